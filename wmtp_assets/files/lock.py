"""An advisory per-artifact lock so two materializations never interleave bytes.

``filelock.FileLock`` on a ``.lock`` file beside the artifact: on Unix it is ``flock``, which the
kernel releases when the holder dies (even by SIGKILL), so a crashed run never blocks the next
one. The soft fallback (a marker file, for filesystems without ``flock``) is turned off: a marker
outlives a killed holder. The holder writes ``pid <n>`` into the file so a run that gives up can
name who holds it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_NAME = ".lock"


class ArtifactLockedError(RuntimeError):
    """Another process holds the artifact's lock for longer than we were willing to wait."""


@contextlib.contextmanager
def artifact_lock(
    folder: Path | str, timeout_s: float = 0.0, poll_s: float = 0.2
) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` for the block; wait up to ``timeout_s`` for it."""
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
        lock.acquire()
    except Timeout:
        raise ArtifactLockedError(
            f"{folder} is being written by another run ({_read_holder(lock_path)}); "
            f"waited {timeout_s:.0f}s. Retry when it finishes."
        ) from None
    try:
        yield lock_path
    finally:
        lock.release()


def _write_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)


def _read_holder(lock_path: Path) -> str:
    try:
        return lock_path.read_text().strip() or "unknown process"
    except OSError:
        return "unknown process"
