"""Under Dagster's own CLIs an unusable instance database is one line naming the file, not
Dagster's traceback (issue 18, 6): the packaged ``dagster.yaml`` names ``CheckedInstance``."""

import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path

import dagster as dg
import pytest

from wmtp_assets.checked_instance import CheckedInstance
from wmtp_assets.demo.mirror import DemoMirror
from wmtp_assets.instance import INSTANCE_DATABASES, check_instance_databases

ROOT = Path(__file__).parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
DG = str(Path(sys.executable).with_name("dg"))
MATERIALIZE = [DAGSTER, "asset", "materialize", "-m", "wmtp_assets.definitions"]
SELECT = ["--select", "datasets/raw", "--partition", "mbpp.test"]

FILL_WHEN_MATERIALIZED = textwrap.dedent(
    """
    # Test-only fault injection (sitecustomize): from the first SQL statement that records an
    # asset materialization on, SQLite answers SQLITE_FULL to any write needing a new page.
    import sqlalchemy
    from sqlalchemy.engine import Engine

    full = False

    def fill(conn, cursor, statement, params, *_):
        global full
        full = full or "'ASSET_MATERIALIZATION'" in str(params)
        if full:
            cursor.connection.execute("PRAGMA max_page_count = 1")

    sqlalchemy.event.listen(Engine, "before_cursor_execute", fill)
    """
)


@contextlib.contextmanager
def write_locked(db: Path) -> Iterator[None]:
    """Another process holds ``db``'s exclusive lock for the block."""
    script = f"""
import sqlite3, time
db = sqlite3.connect({str(db)!r}, isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(120)
"""
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        yield
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME as docs/operations.md makes one: the packaged dagster.yaml, databases
    created by Dagster."""
    folder = tmp_path / "dagster_home"
    folder.mkdir()
    shutil.copy(str(files("wmtp_assets") / "dagster.yaml"), folder / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(folder)) as instance:
        assert isinstance(instance, CheckedInstance)
        instance.get_run_records(limit=1)
    assert all((folder / db).is_file() for db in INSTANCE_DATABASES)
    return folder


def _env(home: Path, mirror: DemoMirror, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*extra.pop("prepend", "").split(), str(ROOT)]),
        "DAGSTER_HOME": str(home),
        "WMTP_STORAGE_ROOT": str(tmp_path / "storage"),
        "WMTP_MIRROR": str(mirror.root),
        "WMTP_TOKENIZER_SHA256": mirror.tokenizer_sha256,
        "WMTP_DEVICE": "cpu",
        **extra,
    }


def _one_line(done: subprocess.CompletedProcess[str], starts: str) -> str:
    """The run failed, with no traceback and one line of ours, starting with ``starts``."""
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    ours = [line for line in output.splitlines() if line.startswith("wmtp-assets: ")]
    assert len(ours) == 1 and ours[0].startswith(f"wmtp-assets: {starts}"), output[-3000:]
    return ours[0]


def _garbage(path: Path) -> None:
    path.write_bytes(b"garbage " * 200)


def _truncated(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize(
    ("database", "damage", "expected"),
    [
        ("history/runs.db", _garbage, "file is not a database"),
        ("history/runs.db", _truncated, "database disk image is malformed"),
        ("history/runs/index.db", _truncated, "database disk image is malformed"),
        ("schedules/schedules.db", _garbage, "file is not a database"),
    ],
)
def test_a_damaged_database_under_dagster_asset_materialize_is_one_line(
    home: Path,
    demo_mirror: DemoMirror,
    tmp_path: Path,
    database: str,
    damage: Callable[[Path], None],
    expected: str,
) -> None:
    damage(home / database)
    done = subprocess.run(
        [*MATERIALIZE, *SELECT],
        cwd=ROOT,
        env=_env(home, demo_mirror, tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = _one_line(done, f"{home / database}: ")
    assert f"cannot be read ({expected}); expected a SQLite database" in line


def test_a_locked_database_under_dagster_and_dg_is_one_line_after_a_bounded_wait(
    home: Path, demo_mirror: DemoMirror, tmp_path: Path
) -> None:
    runs_db = home / "history" / "runs.db"
    env = _env(home, demo_mirror, tmp_path)
    dg_launch = [DG, "launch", "--assets", "datasets/raw", "--partition", "mbpp.test"]
    with write_locked(runs_db):
        for command in ([*MATERIALIZE, *SELECT], dg_launch):
            started = time.monotonic()
            done = subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
            )
            assert time.monotonic() - started < 120
            line = _one_line(done, f"{runs_db}: ")
            assert "(database is locked); expected a SQLite database no other process" in line
    check_instance_databases(home)  # the lock gone, the same instance opens


def test_a_database_that_fills_up_mid_run_under_dagster_is_one_line(
    home: Path, demo_mirror: DemoMirror, tmp_path: Path
) -> None:
    """SQLite itself answers SQLITE_FULL once the run records its materialization (injected by
    a sitecustomize in the ``dagster`` process): the uncaught error is one line naming the
    file; before, Dagster's traceback."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(FILL_WHEN_MATERIALIZED)
    done = subprocess.run(
        [*MATERIALIZE, *SELECT],
        cwd=ROOT,
        env=_env(home, demo_mirror, tmp_path, prepend=str(inject)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = _one_line(done, str(home / "history" / "runs"))
    assert ".db: no space left on device (SQLite: database or disk is full)" in line


def test_the_check_costs_milliseconds(home: Path) -> None:
    started = time.perf_counter()
    for _ in range(20):
        CheckedInstance.config_defaults(str(home))
    assert (time.perf_counter() - started) / 20 < 0.05
