"""Benchmark: one small dataset partition headless, end to end, against the bare import.

What a user types on a GPU node or in cron is
``dagster asset materialize -m wmtp_assets.definitions --select 'group:datasets' --partition K``:
start-up, every step and every check included. Its floor is loading the code location,
``python -c "import wmtp_assets.definitions"``. Both run as fresh subprocesses, alternately,
``--repeat`` times, in the same run; the table gives medians and the ratio (target: within 3x).

Set-up (untimed): ``wmtp-assets --storage-root <workdir>/storage demo`` builds the storage, so
the partition's upstream (the demo mirror, the tokenizer) is there.

    .venv/bin/python bench/headless.py --workdir /tmp/bench-headless --partition mbpp.test
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the child) of one command; it must succeed."""
    before = os.times()
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = os.times()
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--partition", default="mbpp.test")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    root = args.workdir / "storage"
    shutil.rmtree(args.workdir, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WMTP_", "DAGSTER_"))}
    print(f"set-up: wmtp-assets demo into {root} (untimed) ...", flush=True)
    timed([str(BIN / "wmtp-assets"), "--storage-root", str(root), "demo"], env)
    env = {**env, "WMTP_STORAGE_ROOT": str(root), "DAGSTER_HOME": str(root / "dagster_home")}

    commands = {
        "import wmtp_assets.definitions": [sys.executable, "-c", "import wmtp_assets.definitions"],
        f"materialize group:datasets --partition {args.partition}": [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "wmtp_assets.definitions",
            "--select",
            "group:datasets",
            "--partition",
            args.partition,
        ],
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, command in commands.items():
            samples[name].append(timed(command, env))

    floor = statistics.median(wall for wall, _ in samples["import wmtp_assets.definitions"])
    print(
        f"\n{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, {args.repeat} runs each"
    )
    print("| command | median wall s | vs import | median CPU s |")
    print("|---|---:|---:|---:|")
    for name, runs in samples.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"| `{name}` | {wall:.1f} | {wall / floor:.2f}x | {cpu:.1f} |")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
