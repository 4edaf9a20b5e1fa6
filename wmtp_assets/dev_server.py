"""Run ``dagster dev`` under ``wmtp-assets ui`` so that stopping one stops all (entry-point layer).

``dagster dev`` starts a webserver, a daemon, a code server and run workers, all in its own
process group here. SIGINT or SIGTERM to ``wmtp-assets ui`` (Ctrl-C in a terminal, ``kill``,
a container stop) is forwarded to that whole group, as a terminal's Ctrl-C would reach it, and
``ui`` waits for ``dagster dev`` to end, repeating the signal to it every ``RESEND_S`` (one that
arrives while it is still starting its services can be lost); if it has not ended after
``grace_s`` (or at a second signal) the group is killed. Once ``dagster dev`` has ended, what
is left in its group is an orphan (its code-server proxy can restart a code server that stopped
before it was told to) and is ended too, so no process of the group outlives ``ui``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType

GRACE_S = 30.0
"""How long ``dagster dev`` gets to shut its processes down before they are killed."""
RESEND_S = 5.0
"""How often the stop signal is repeated to ``dagster dev`` while it has not ended."""
ORPHAN_GRACE_S = 5.0
"""How long what ``dagster dev`` left behind gets between SIGTERM and SIGKILL."""

FORWARDED = (signal.SIGINT, signal.SIGTERM)


def group_alive(pgid: int) -> bool:
    """Whether any process is left in process group ``pgid`` (zombies of ours aside)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _end_orphans(pgid: int) -> None:
    """SIGTERM what is left in the group, then SIGKILL what is left after ``ORPHAN_GRACE_S``."""
    if not group_alive(pgid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + ORPHAN_GRACE_S
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    _kill_group(pgid)


def run_supervised(command: Sequence[str], env: Mapping[str, str], grace_s: float = GRACE_S) -> int:
    """Run ``command`` in a new process group until it exits or a forwarded signal stops it.

    Returns its exit status; 0 when it was asked to stop and ended within ``grace_s``; 1 when
    it had to be killed."""
    stopping: list[tuple[int, float]] = []  # the first stop signal and when it arrived
    group: list[int] = []  # the child's process group, once it is started

    def forward(signum: int, _: FrameType | None) -> None:
        if stopping:  # a second signal: stop waiting
            if group:
                _kill_group(group[0])
            return
        stopping.append((signum, time.monotonic()))
        if group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group[0], signum)

    # Installed before the child starts: a caught signal is reset to its default in the child at
    # exec, an ignored one stays ignored (SIGINT in a background job of a non-interactive shell,
    # e.g. CI), and dagster dev, which maps SIGTERM to SIGINT's handler, could not be stopped.
    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        process = subprocess.Popen(list(command), env=dict(env), process_group=0)
        pgid = process.pid
        group.append(pgid)
        if stopping:  # a signal that came while it started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, stopping[0][0])
        killed, repeated = False, 0
        while True:
            try:
                status = process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                if not stopping:
                    continue
                signum, since = stopping[0]
                waited = time.monotonic() - since
                if waited > grace_s:
                    _kill_group(pgid)
                    killed = True
                elif waited > RESEND_S * (repeated + 1):
                    repeated += 1
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signum)
                continue
            break
        _end_orphans(pgid)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if killed:
        print(
            f"wmtp-assets ui: dagster dev's processes had not stopped {grace_s:.0f}s after the "
            "signal; killed them",
            file=sys.stderr,
        )
        return 1
    return 0 if stopping else status
