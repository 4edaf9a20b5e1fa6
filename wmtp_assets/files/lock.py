"""An advisory per-artifact lock so two materializations never interleave bytes.

``filelock.FileLock`` on a ``.lock`` file beside the artifact: on Unix it is ``flock``, which the
kernel releases when the holder dies (even by SIGKILL), so a crashed run never blocks the next
one. The soft fallback (a marker file, for filesystems without ``flock``) is turned off: a marker
outlives a killed holder. The holder writes who it is (pid, host, since when, command) into the
file, so a waiter can say whom it waits for and a run that gives up can name the holder.

A wait is never silent and never unbounded: a lock that is not free at once is announced
(``notify``, default a log warning) with its holder and the bound, and after ``timeout_s``
(``WMTP_LOCK_TIMEOUT`` where a caller has settings) :class:`ArtifactLockedError` says the same.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_NAME = ".lock"
log = logging.getLogger(__name__)


class ArtifactLockedError(RuntimeError):
    """Another process holds the artifact's lock for longer than we were willing to wait."""


@contextlib.contextmanager
def artifact_lock(
    folder: Path | str,
    timeout_s: float = 0.0,
    poll_s: float = 0.2,
    notify: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` for the block; wait up to ``timeout_s`` for it,
    telling ``notify`` (default: a log warning) who holds it if it is not free at once."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / LOCK_NAME
    lock = FileLock(
        lock_path,
        timeout=timeout_s,
        poll_interval=poll_s,
        preserve_lock_file=True,  # waiters share the inode; also turns the soft fallback off
        on_acquired=_write_holder,
    )
    try:
        lock.acquire(timeout=0)
    except Timeout:
        try:
            if timeout_s > 0:
                (notify or log.warning)(
                    f"{lock_path}: held by {_read_holder(lock_path)}; waiting up to "
                    f"{timeout_s:.0f}s (WMTP_LOCK_TIMEOUT)"
                )
            lock.acquire(timeout=timeout_s)
        except Timeout:
            raise ArtifactLockedError(
                f"{lock_path}: held by {_read_holder(lock_path)}; gave up after waiting "
                f"{timeout_s:.0f}s (WMTP_LOCK_TIMEOUT). Retry when that run finishes, or end it."
            ) from None
    try:
        yield lock_path
    finally:
        lock.release()


def holder_line() -> str:
    """Who this process is, as a lock's holder record says it."""
    since = datetime.now(UTC).isoformat(timespec="seconds")
    command = " ".join(sys.argv)[:300] or "python"
    return f"pid {os.getpid()} on {socket.gethostname()} since {since}: {command}"


def _write_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder_line().encode(), 0)


def _read_holder(lock_path: Path) -> str:
    try:
        return lock_path.read_text().strip() or "an unknown process"
    except OSError:
        return "an unknown process"
