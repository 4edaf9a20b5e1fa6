"""Temporary files that become artifacts together, in a fixed order, or not at all.

The one install engine of the code base: a dataset split (JSONL, index, stats) and a fetch into
``raw/`` (upstream files, then ``SOURCE.json``) both go through it. Everything is first written
completely to temporary siblings of the destinations (``.<name>.tmp-*``, the names
``files.atomic`` uses and sweeps), so a crash while writing leaves only such files. ``publish``
then fsyncs them, deletes the ``retract`` files (the seals of the previous version, removed
before anything they vouch for changes), and renames the temporaries over their destinations in
registration order. Leaving the block without publishing deletes every temporary and every
scratch file or folder; with ``remove_new_folders`` also the (then empty) folders ``stage`` had to
create, so a failed first fetch leaves no ``raw/`` behind.

Callers hold the artifact's lock (``files.lock``) for the whole block.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from wmtp_assets.files.atomic import fsync_dir, tmp_path_for


class PublishError(OSError):
    """Publishing failed (full disk, I/O error); the message names the file and its folder."""


class Staging:
    """Collects ``(temporary, destination)`` pairs; use as a context manager."""

    def __init__(self, *, remove_new_folders: bool = False) -> None:
        """``remove_new_folders`` only where the caller's lock covers every folder it creates:
        another writer may be about to use a folder this one made."""
        self._remove_new_folders = remove_new_folders
        self._staged: list[tuple[Path, Path]] = []
        self._scratch: list[Path] = []
        self._created: list[Path] = []

    def stage(self, dest: Path) -> Path:
        """A fresh temporary path that ``publish`` will rename to ``dest``."""
        self._make_parent(dest)
        tmp = tmp_path_for(dest)
        self._staged.append((tmp, dest))
        return tmp

    def adopt(self, tmp: Path, dest: Path) -> None:
        """Have ``publish`` rename ``tmp``, a temporary another writer completed, to ``dest``;
        ``tmp`` must be on ``dest``'s filesystem (a temporary sibling or a scratch file)."""
        self._make_parent(dest)
        self._staged.append((tmp, dest))

    def scratch(self, beside: Path) -> Path:
        """A temporary file path next to ``beside`` that is never published, only cleaned up."""
        self._make_parent(beside)
        tmp = tmp_path_for(beside)
        self._scratch.append(tmp)
        return tmp

    def scratch_dir(self, beside: Path) -> Path:
        """A fresh temporary folder next to ``beside``, removed with its content at the end."""
        tmp = self.scratch(beside)
        tmp.mkdir()
        return tmp

    def publish(self, retract: Iterable[Path] = ()) -> None:
        """Make every staged file durable, delete ``retract``, then rename in staged order.

        Raises :class:`PublishError` naming the file when the disk refuses; files renamed before
        the failure stay renamed (the retracted seals say they are not yet vouched for).
        """
        for tmp, dest in self._staged:
            with _naming(dest, "making it durable"):
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        for path in retract:
            with _naming(path, "retracting it"):
                path.unlink(missing_ok=True)
                fsync_dir(path.parent)
        for tmp, dest in self._staged:
            with _naming(dest, "renaming it into place"):
                os.replace(tmp, dest)
                fsync_dir(dest.parent)
        self._staged.clear()

    def discard(self) -> None:
        """Delete every temporary not yet published and the folders made for them."""
        for path in [tmp for tmp, _ in self._staged] + self._scratch:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for folder in reversed(self._created if self._remove_new_folders else []):
            with contextlib.suppress(OSError):  # not empty: something was published into it
                folder.rmdir()
        self._staged.clear()
        self._scratch.clear()
        self._created.clear()

    def _make_parent(self, path: Path) -> None:
        missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        self._created += reversed(missing)

    def __enter__(self) -> Staging:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()


def retract_first(*paths: Path) -> None:
    """Delete ``paths`` (a seal first, then what it vouches for) before a new version is
    written, so a rerun never holds the previous version and the new one at once: the disk
    it needs is the new version's, not twice that. A kill from here on leaves no seal, which
    the artifact's checks refuse, and the next run writes the new version (never a mix)."""
    for path in paths:
        with _naming(path, "retracting it"):
            path.unlink(missing_ok=True)
    for folder in dict.fromkeys(p.parent for p in paths):
        if folder.is_dir():
            with _naming(folder, "retracting in it"):
                fsync_dir(folder)


@contextlib.contextmanager
def _naming(path: Path, step: str) -> Iterator[None]:
    """Re-raise an ``OSError`` of ``step`` as a :class:`PublishError` that names ``path``."""
    try:
        yield
    except OSError as exc:
        raise PublishError(
            exc.errno, f"{path}: {step} failed: {exc.strerror or exc} (folder {path.parent})"
        ) from exc
