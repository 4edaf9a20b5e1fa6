"""A set of temporary files that become artifacts together, in a fixed order, or not at all.

Everything a split produces is first written completely to temporary siblings of the
destinations (``.<name>.tmp-*``, the names ``files.atomic`` uses and sweeps), so a crash while
processing leaves only such files. ``publish`` then fsyncs them, deletes the ``retract`` files
(the seals of the previous version), and renames the temporaries over their destinations in
registration order. Leaving the ``Staging`` block without publishing deletes every temporary.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from wmtp_assets.files.atomic import fsync_dir, tmp_path_for


class Staging:
    """Collects ``(temporary, destination)`` pairs; use as a context manager."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []
        self._scratch: list[Path] = []

    def stage(self, dest: Path) -> Path:
        """A fresh temporary path that ``publish`` will rename to ``dest``."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path_for(dest)
        self._staged.append((tmp, dest))
        return tmp

    def scratch(self, beside: Path) -> Path:
        """A temporary path next to ``beside`` that is never published, only cleaned up."""
        beside.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path_for(beside)
        self._scratch.append(tmp)
        return tmp

    def publish(self, retract: Iterable[Path] = ()) -> None:
        """Make every staged file durable, delete ``retract``, then rename in staged order."""
        for tmp, _ in self._staged:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for path in retract:
            path.unlink(missing_ok=True)
            fsync_dir(path.parent)
        for tmp, dest in self._staged:
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
        self._staged.clear()

    def discard(self) -> None:
        """Delete every temporary not yet published (missing ones are fine)."""
        for path in [tmp for tmp, _ in self._staged] + self._scratch:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._staged.clear()
        self._scratch.clear()

    def __enter__(self) -> Staging:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()
