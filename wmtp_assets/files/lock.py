"""An advisory per-artifact lock so two materializations never interleave bytes.

The lock is ``fcntl.flock`` on a ``.lock`` file beside the artifact: the kernel releases it
when the holder dies (even by SIGKILL), so a crashed run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path


class ArtifactLockedError(RuntimeError):
    """Another process holds the artifact's lock for longer than we were willing to wait."""


@contextlib.contextmanager
def artifact_lock(
    folder: Path | str, timeout_s: float = 0.0, poll_s: float = 0.2
) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` for the block; wait up to ``timeout_s`` for it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(lock_path)
                    raise ArtifactLockedError(
                        f"{folder} is being written by another run ({holder}); "
                        f"waited {timeout_s:.0f}s. Retry when it finishes."
                    ) from None
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        yield lock_path
    finally:
        os.close(fd)


def _read_holder(lock_path: Path) -> str:
    try:
        return lock_path.read_text().strip() or "unknown process"
    except OSError:
        return "unknown process"
