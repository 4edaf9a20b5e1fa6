"""The one Dagster instance a storage root's runs are recorded in (entry-point layer).

``DAGSTER_HOME`` when it is set; otherwise ``<storage root>/dagster_home``, created with the
packaged ``dagster.yaml`` (pools, queued runs). The demo, ``verify``, ``report`` and
``wmtp-assets ui`` (``dagster dev``) all open this one, so what the demo built is what the UI shows.

An unusable instance is one :class:`InstanceError` line naming the variable or the file: a
``DAGSTER_HOME`` that is not an existing absolute folder, a database file that is not SQLite, is
corrupt or truncated, or that another process keeps locked, a folder with no room left
(``check_instance_databases``), before any run starts. A database that fills up during a run
(SQLite's "database or disk is full": ENOSPC, a quota) is one :class:`InstanceFullError` line
naming that file (``watch_for_full_databases``, ``database_full``). Under Dagster's own CLIs the
packaged ``dagster.yaml``'s instance class applies the same (``checked_instance``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy.engine import Engine

from wmtp_assets.files.atomic import atomic_write_text
from wmtp_assets.settings import Settings

INSTANCE_FOLDER = "dagster_home"
INSTANCE_DATABASES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")
"""The SQLite files every run reads or writes (per-run event logs are opened as runs need them)."""
LOCK_WAIT_S = 5.0
FULL_BELOW_BYTES = 64 * 1024
"""Free space under which a failing database is reported as on a full disk."""


class InstanceError(ValueError):
    """The Dagster instance cannot be used; the message names the variable or file."""


class InstanceFullError(InstanceError):
    """An instance database could not grow (no space left on device); names the file."""


_full_databases: list[str] = []
"""Every SQLite file that answered 'database or disk is full' in this process, newest last."""


def _is_full(exc: BaseException) -> bool:
    return (
        isinstance(exc, sqlite3.Error)
        and getattr(exc, "sqlite_errorcode", 0) == sqlite3.SQLITE_FULL
    )


def _is_io_error(exc: BaseException) -> bool:
    """SQLite's "disk I/O error": what it answers on a full disk once not even a journal fits."""
    code = getattr(exc, "sqlite_errorcode", 0) if isinstance(exc, sqlite3.Error) else 0
    return code & 0xFF == sqlite3.SQLITE_IOERR


def _note_full_database(context: sqlalchemy.engine.ExceptionContext) -> None:
    engine = context.engine
    if engine is not None and _is_full(context.original_exception):
        _full_databases.append(str(engine.url.database or engine.url))


def watch_for_full_databases() -> None:
    """Note the file of every SQLite database that fills up from now on, whichever of Dagster's
    engines (run, event log per run, index, schedules) it is; idempotent."""
    if not sqlalchemy.event.contains(Engine, "handle_error", _note_full_database):
        sqlalchemy.event.listen(Engine, "handle_error", _note_full_database)


def database_full(exc: BaseException) -> InstanceFullError | None:
    """The one-line error for a 'database or disk is full' anywhere in ``exc``'s chain (naming
    the file ``watch_for_full_databases`` saw fill up), or None when that is not the cause."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if _is_full(cause) or (_full_databases and _is_io_error(cause)):
            where = _full_databases[-1] if _full_databases else "the Dagster instance's database"
            return InstanceFullError(
                f"{where}: no space left on device (SQLite: database or disk is full); the run "
                "stopped and what it had not recorded is not sealed: free space (or point "
                "DAGSTER_HOME at a disk with room), then rematerialize what it was building"
            )
        cause = cause.__cause__ or cause.__context__
    return None


def _excepthook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    full = database_full(value)
    if full is None:
        (_previous_excepthook or sys.__excepthook__)(kind, value, tb)
    else:
        print(f"wmtp-assets: {full}", file=sys.stderr)


_previous_excepthook: Callable[..., Any] | None = None


def name_full_databases_on_exit() -> None:
    """For an entry point we do not own (``dagster``, ``dg``): watch the databases
    (``watch_for_full_databases``), and make an uncaught error that is a full instance database
    its one line on stderr (the process still exits 1); any other error's traceback is
    unchanged. Idempotent."""
    global _previous_excepthook
    watch_for_full_databases()
    if sys.excepthook is not _excepthook:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook


def instance_home(settings: Settings) -> Path:
    """Where the instance lives; created (with ``dagster.yaml``) when it is the default one."""
    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"])
        if not home.is_absolute() or not home.is_dir():
            raise InstanceError(
                f"DAGSTER_HOME: {str(home)!r} is not an existing folder given as an absolute "
                "path; expected the Dagster instance's folder (create it, or unset DAGSTER_HOME "
                f"to use {(settings.storage_root / INSTANCE_FOLDER).resolve()})"
            )
        return home
    home = (settings.storage_root / INSTANCE_FOLDER).resolve()
    config = home / "dagster.yaml"
    if not config.is_file():
        home.mkdir(parents=True, exist_ok=True)
        atomic_write_text(config, (files("wmtp_assets") / "dagster.yaml").read_text())
    return home


def check_instance_databases(home: Path) -> None:
    """Each instance database that exists is SQLite and its write lock is free within
    ``LOCK_WAIT_S`` (taken and released at once, nothing written), and the folder has
    ``FULL_BELOW_BYTES`` free; else :class:`InstanceError` naming the file or folder (corrupt,
    truncated, not SQLite, locked by another process, no space left)."""
    free = shutil.disk_usage(home).free
    if free < FULL_BELOW_BYTES:
        raise InstanceFullError(
            f"{home}: no space left on device ({free:,} bytes free, the instance's databases "
            "cannot grow); free space, or point DAGSTER_HOME at a disk with room"
        )
    for rel in INSTANCE_DATABASES:
        path = home / rel
        if not path.is_file():
            continue
        try:
            uri = f"file:{path}?mode=rw"
            connection = sqlite3.connect(uri, uri=True, timeout=LOCK_WAIT_S, isolation_level=None)
            with contextlib.closing(connection) as db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            if _is_full(exc) or shutil.disk_usage(path.parent).free < FULL_BELOW_BYTES:
                raise InstanceFullError(  # SQLite says "disk I/O error" if no journal fits
                    f"{path}: no space left on device ({exc}); free space, or point "
                    "DAGSTER_HOME at a disk with room"
                ) from None
            raise InstanceError(
                f"{path}: the Dagster instance's database cannot be read ({exc}); expected a "
                "SQLite database no other process keeps locked (end that process, restore the "
                "file from a backup, or point DAGSTER_HOME at another instance)"
            ) from None


def instance_exists(settings: Settings) -> bool:
    """Whether the instance ``instance_home`` would open is there already (never creates it)."""
    if os.environ.get("DAGSTER_HOME"):
        return True
    return (settings.storage_root / INSTANCE_FOLDER / "dagster.yaml").is_file()
