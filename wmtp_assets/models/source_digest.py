"""Proof that a conversion converted the bytes ``raw/SOURCE.json`` vouches for.

A fetch records each raw file's SHA256; disks rot and files get replaced after that. So the
conversion re-hashes every recorded file while it converts: :class:`SourceDigests` reads them
in a background thread, sequentially, while the conversion reads the same files through
``mmap`` (both hit the same page cache, so the bytes are read from disk once and the hash
costs CPU on another core, not another pass over the disk). Before anything is published the
conversion calls :meth:`SourceDigests.require_recorded`, which raises
:class:`SourceChangedError` naming the file and both hashes when a file differs.

Hashing the pickle's bytes *in* the tensor reads is not possible cleanly: ``torch.load`` maps
the zip archive and the writer reads tensors in its own order, not in file order.

A source is read once, so its pages are dropped from the page cache as soon as both readers
are done with them (:meth:`SourceDigests.drop_when_hashed`): a 27 GB source would otherwise
push the freshly written weights out of the cache before they are hashed and checked.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from wmtp_assets.files.hashing import CHUNK
from wmtp_assets.models.file_mapping import drop_cached
from wmtp_assets.sources.errors import SourceError
from wmtp_assets.sources.provenance import SOURCE_FILE


class SourceChangedError(SourceError):
    """A raw file's bytes are not those ``SOURCE.json`` records (bit rot, a replaced file)."""


class SourceDigests:
    """Hash ``expected``'s files (path -> recorded SHA256) in the background; use as a context
    manager around the conversion that reads them."""

    def __init__(self, expected: Mapping[Path, str]) -> None:
        self._expected = dict(expected)
        self._found: dict[Path, str] = {}
        self._failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="source-sha256", daemon=True)
        self._hashed: dict[Path, int] = {}
        self._pending: dict[Path, list[tuple[int, int]]] = {}
        self._lock = threading.Lock()

    @property
    def files(self) -> list[Path]:
        return list(self._expected)

    def _run(self) -> None:
        try:
            for path in self._expected:
                digest = self._sha256_unless_stopped(path)
                if digest is None:
                    return
                self._found[path] = digest
        except BaseException as exc:  # reported by require_recorded, in the caller's thread
            self._failure = exc

    def drop_when_hashed(self, path: Path, begin: int, end: int) -> None:
        """The conversion is done with ``path``'s bytes ``[begin, end)``: drop them from the page
        cache once this hash has read them too (now, for a file it does not hash)."""
        with self._lock:
            if path in self._expected and self._hashed.get(path, 0) < end:
                self._pending.setdefault(path, []).append((begin, end))
                return
        drop_cached(path, begin, end)

    def _hashed_until(self, path: Path, position: int) -> None:
        with self._lock:
            self._hashed[path] = position
            pending = self._pending.get(path, [])
            ready = [span for span in pending if span[1] <= position]
            self._pending[path] = [span for span in pending if span[1] > position]
        for begin, end in ready:
            drop_cached(path, begin, end)

    def _sha256_unless_stopped(self, path: Path) -> str | None:
        """SHA256 of ``path``, or None once stopped. Hand-written rather than
        ``hashlib.file_digest`` so that a failed conversion does not go on reading 27 GB."""
        digest = hashlib.sha256()
        view = memoryview(bytearray(CHUNK))
        position = 0
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(view):
                if self._stop.is_set():
                    return None
                digest.update(view[:n])
                position += n
                self._hashed_until(path, position)
        return digest.hexdigest()

    def require_recorded(self) -> None:
        """Wait for the hashes; raise :class:`SourceChangedError` for the first file that is
        missing, unreadable or whose SHA256 differs from ``SOURCE.json``."""
        self._thread.join()
        if self._failure is not None:
            path = getattr(self._failure, "filename", None) or "a raw file"
            reason = getattr(self._failure, "strerror", None) or self._failure
            raise SourceChangedError(
                f"{path}: listed in {SOURCE_FILE} but cannot be read ({reason})"
            ) from None
        for path, expected in self._expected.items():
            found = self._found[path]
            if found != expected:
                raise SourceChangedError(
                    f"{path}: SHA256 {found} != {SOURCE_FILE} {expected}; the raw bytes changed "
                    "since they were fetched (rematerialize the raw asset)"
                )

    def __enter__(self) -> SourceDigests:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
