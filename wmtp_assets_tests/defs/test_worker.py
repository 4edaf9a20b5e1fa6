"""A step worker dies with the process that started it (the killed-CLI fault of issue 10)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from wmtp_assets.defs.worker import die_with_parent

RUN_PROCESS = """
import multiprocessing, sys, time
from pathlib import Path

def step(pid_file):
    from wmtp_assets.defs.worker import die_with_parent
    armed = die_with_parent()
    Path(pid_file).write_text(f"{armed} {__import__('os').getpid()}")
    time.sleep(120)

if __name__ == "__main__":
    context = multiprocessing.get_context("forkserver")
    context.Process(target=step, args=(sys.argv[1],)).start()
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead for our purpose
        return stat.read().split()[2] != "Z"


def test_a_forkserver_step_worker_is_killed_when_its_run_process_is(tmp_path: Path) -> None:
    script, pid_file = tmp_path / "run.py", tmp_path / "worker.pid"
    script.write_text(RUN_PROCESS)
    run = subprocess.Popen([sys.executable, str(script), str(pid_file)])
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.1)
        armed, pid = pid_file.read_text().split()
        assert armed == "True" and _alive(int(pid))
        run.send_signal(signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 15
        while _alive(int(pid)):
            assert time.monotonic() < deadline, "the worker outlived its killed run process"
            time.sleep(0.1)
    finally:
        run.kill()


def test_the_run_process_itself_is_left_alone() -> None:
    assert die_with_parent() is False
