"""An unusable Dagster instance is one line naming the variable or the file (issue 18, 8)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine

from wmtp_assets.cli import main
from wmtp_assets.instance import (
    InstanceError,
    check_instance_databases,
    database_full,
    instance_home,
    watch_for_full_databases,
)
from wmtp_assets.settings import Settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A root's default instance, with its run database created as Dagster does."""
    import dagster as dg

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    folder = instance_home(Settings(storage_root=tmp_path / "storage"))
    with dg.DagsterInstance.from_config(str(folder)) as instance:
        instance.get_run_records(limit=1)
    assert (folder / "history" / "runs.db").is_file()
    return folder


@pytest.mark.parametrize("kind", ["missing", "a file"])
def test_a_missing_dagster_home_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    if kind == "a file":
        (tmp_path / "nowhere").write_text("not a folder\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(InstanceError, match=r"^DAGSTER_HOME: '.*nowhere' is not an existing"):
        instance_home(Settings(storage_root=tmp_path / "storage"))
    assert main(["--storage-root", str(tmp_path / "storage"), "verify"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wmtp-assets: DAGSTER_HOME: ") and err.count("\n") == 1


def test_a_corrupt_run_database_is_named(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    check_instance_databases(home)
    runs_db = home / "history" / "runs.db"
    runs_db.write_bytes(b"garbage " * 200)
    with pytest.raises(InstanceError, match=rf"^{runs_db}: .*not a database"):
        check_instance_databases(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["--storage-root", str(home.parent), "verify"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"wmtp-assets: {runs_db}: ") and err.count("\n") == 1


def test_a_locked_run_database_is_named_after_a_bounded_wait(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs_db = home / "history" / "runs.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sqlite3, time
                db = sqlite3.connect({str(runs_db)!r}, isolation_level=None)
                db.execute("BEGIN EXCLUSIVE")
                print("locked", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        monkeypatch.setattr("wmtp_assets.instance.LOCK_WAIT_S", 0.5)
        with pytest.raises(InstanceError, match=rf"^{runs_db}: .*locked"):
            check_instance_databases(home)
    finally:
        holder.kill()
        holder.wait()
    check_instance_databases(home)
    assert sqlite3.connect(runs_db).execute("SELECT 1").fetchone() == (1,)


@contextlib.contextmanager
def _instance_disk_fills_when(*trigger: str) -> Iterator[None]:
    """From the first SQL statement whose parameters contain all of ``trigger`` on, every
    SQLite file of every engine is capped at the pages it has (``PRAGMA max_page_count``):
    SQLite itself then answers SQLITE_FULL to any write that needs a page, as on a full disk."""
    full = False

    def fill(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        nonlocal full
        full = full or all(part in str(params) for part in trigger)
        if full:
            cursor.connection.execute("PRAGMA max_page_count = 1")  # clamps to the current size

    sqlalchemy.event.listen(Engine, "before_cursor_execute", fill)
    try:
        yield
    finally:
        sqlalchemy.event.remove(Engine, "before_cursor_execute", fill)


def test_a_full_instance_database_is_one_line_and_leaves_no_stale_seal(
    copied_demo_storage: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import dagster as dg

    from wmtp_assets.definitions import ALL_ASSETS
    from wmtp_assets.defs.checks import ALL_CHECKS
    from wmtp_assets.defs.resources import WmtpResource
    from wmtp_assets.graph_runs import verify_everything

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    root = copied_demo_storage.storage_root
    home = instance_home(copied_demo_storage)
    stats = root / "datasets_v2" / "mbpp" / "stats" / "test_stats.json"
    before = stats.read_bytes()
    watch_for_full_databases()
    partitioned = [a for a in ALL_ASSETS if a.partitions_def is not None]
    other_limit = copied_demo_storage.model_copy(update={"max_tokens": 300})  # other bytes
    verify = ["--storage-root", str(root), "verify", "--partition", "mbpp.test"]
    # The disk fills as the processed split's materialization (its seal) is recorded.
    with (
        _instance_disk_fills_when("'ASSET_MATERIALIZATION'", """'["datasets", "processed"]'"""),
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        with pytest.raises(Exception) as raised:
            dg.materialize(
                [*ALL_ASSETS, *ALL_CHECKS],
                selection=dg.AssetSelection.assets(*partitioned),
                partition_key="mbpp.test",
                resources={"wmtp": WmtpResource.from_settings(other_limit)},
                instance=instance,
                raise_on_error=False,
            )
        assert stats.read_bytes() != before  # the files were published, their seal was not
        full = database_full(raised.value)
        assert full is not None
        assert re.match(rf"^{home}/\S+\.db: no space left on device", str(full)), full
        assert "\n" not in str(full)
        failed_run = instance.get_runs(limit=1)[0].run_id
        # verify while the disk is still full: one line naming the file, no traceback
        capsys.readouterr()
        assert main(verify) == 2
        err = capsys.readouterr().err
        assert re.match(rf"^wmtp-assets: {home}/\S+\.db: no space left on device", err), err
        assert err.count("\n") == 1 and "Traceback" not in err
    # space freed: verify runs, and the stale seal is not taken for the stored bytes
    with dg.DagsterInstance.from_config(str(home)) as instance:
        rows = verify_everything(copied_demo_storage, instance, [], ["mbpp.test"]).rows
    stale = {r.asset: r.summary for r in rows if r.check == "unchanged_since_materialization"}
    assert stale["datasets/stats"].startswith(f"{stats}: not sealed: run {failed_run} ("), stale
    assert "recorded none" in stale["datasets/stats"]
    assert stale["datasets/raw"].startswith("1 file unchanged"), stale  # sealed before the fill


def test_an_io_error_counts_as_full_only_once_a_database_was_seen_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a full disk SQLite answers "database or disk is full" first, then "disk I/O error"
    once not even a journal fits: the later error is the same cause, named by the file."""
    monkeypatch.setattr("wmtp_assets.instance._full_databases", [])
    io_error = sqlite3.OperationalError("disk I/O error")
    io_error.sqlite_errorcode = sqlite3.SQLITE_IOERR_WRITE  # type: ignore[attr-defined]
    assert database_full(io_error) is None, "an I/O error alone is not a full disk"
    watch_for_full_databases()
    db = tmp_path / "full.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x BLOB)")
    with pytest.raises(sqlalchemy.exc.OperationalError), engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA max_page_count = 2")
        conn.exec_driver_sql("INSERT INTO t VALUES (zeroblob(100000))")
    full = database_full(RuntimeError("a run failed"))
    assert full is None, "only the error's own chain counts"
    try:
        raise RuntimeError("a later read") from io_error
    except RuntimeError as later:
        named = database_full(later)
    assert named is not None and str(named).startswith(f"{db}: no space left on device")
