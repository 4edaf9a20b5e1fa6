"""An unusable Dagster instance is one line naming the variable or the file (issue 18, 8)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wmtp_assets.cli import main
from wmtp_assets.instance import InstanceError, check_instance_databases, instance_home
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


def test_a_missing_dagster_home_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
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
