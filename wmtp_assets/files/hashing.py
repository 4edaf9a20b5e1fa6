"""SHA256 (and git blob ids) of files, and the ``SHA256SUMS`` format that ``sha256sum -c`` reads.

hashlib is used directly: coreutils ``sha256sum`` is several times slower on these machines
(REFERENCE §7), and hashing in-process lets callers hash bytes as they are written.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

CHUNK = 8 << 20
"""Read size of the callers that copy and hash in one pass (memory bounded by it)."""
_SCAN_BUFFERS = 4
"""Chunks in flight in :func:`sha256_scan` (read ahead while earlier ones are hashed)."""
_READ_AHEAD_FROM = 64 << 20
"""Files from this size are read by a thread ahead of the hash (``file_digest`` reads and hashes
in turn): 1.09-1.17 GB/s against 0.95-1.02 GB/s on a cold 27 GB checkpoint here."""
_MEMORY = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
_SUMS_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


class ChecksumFileError(ValueError):
    """A ``SHA256SUMS`` file that cannot be parsed."""


_SHARED: ContextVar[dict[tuple[str, int, int, int], str] | None] = ContextVar(
    "shared_sha256", default=None
)


@contextmanager
def shared_hashes(known: Mapping[Path, tuple[str, Sequence[int]]] | None = None) -> Iterator[None]:
    """Within the block, a file already hashed is not read again while its path, size, mtime and
    inode stay the same: the checks of one step hash the same files (``sha256_matches`` and the
    seal the weights, ``raw_matches_source`` and the seal a 27 GB checkpoint). Keep the block to
    one pass of checks; outside it every call reads the file.

    ``known`` seeds it with ``{path: (SHA256, file_identity)}`` computed earlier in the same
    run (by the writer, as it wrote the bytes): taken only where the file's identity is still
    the one recorded then."""
    cache: dict[tuple[str, int, int, int], str] = {}
    for path, (sha256, identity) in (known or {}).items():
        try:
            stat = os.stat(path)
        except OSError:
            continue
        if [stat.st_size, stat.st_mtime_ns, stat.st_ino] == list(identity):
            cache[_identity(path, stat)] = sha256
    token = _SHARED.set(cache)
    try:
        yield
    finally:
        _SHARED.reset(token)


def file_identity(path: Path | str) -> list[int]:
    """Size, mtime (ns) and inode: what ``shared_hashes`` compares before reusing a hash."""
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _identity(path: Path | str, stat: os.stat_result) -> tuple[str, int, int, int]:
    """What must stay the same for a file's hash to be reused within one step."""
    return (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


def sha256_file(path: Path | str) -> str:
    """Hex SHA256 of a file, in bounded memory."""
    shared = _SHARED.get()
    if shared is None and _AHEAD is None:
        return _read_sha256(path)
    stat = os.stat(path)
    key = _identity(path, stat)
    if shared is not None and key in shared:
        return shared[key]
    hexdigest = _hashed_ahead(key) or _read_sha256(path)
    if shared is not None:
        shared[key] = hexdigest
    return hexdigest


def sha256_scan(path: Path | str, consume: Callable[[memoryview, int], None]) -> str:
    """SHA256 of a file, each chunk also handed to ``consume(chunk, offset)`` in file order: a
    check that reads every byte (finiteness of weights) and the hash share one pass. Reading,
    hashing and ``consume`` overlap (a reader thread, a hashing thread, the caller), so the
    pass runs at the speed of the slowest of the three. Within :func:`shared_hashes` the hash
    is kept for the step's other checks, and one already known there is not computed again."""
    stat = os.stat(path)
    shared = _SHARED.get()
    known = None if shared is None else shared.get(_identity(path, stat))
    if known is not None:
        _read_ahead(path, None, consume)
        return known
    ahead = None if _AHEAD is None else _AHEAD.take(_identity(path, stat))
    if ahead is not None:  # being hashed by a thread ahead: this pass only consumes
        _read_ahead(path, None, consume)
        hexdigest = ahead.result() or _read_sha256(path)
        remember_sha256(path, stat, hexdigest)
        return hexdigest
    digest = hashlib.sha256()
    _read_ahead(path, digest.update, consume)
    hexdigest = digest.hexdigest()
    remember_sha256(path, stat, hexdigest)
    return hexdigest


def _read_ahead(
    path: Path | str,
    update: Callable[[memoryview], object] | None,
    consume: Callable[[memoryview, int], None] | None,
    cancelled: threading.Event | None = None,
) -> bool:
    """One pass over ``path`` in :data:`CHUNK` s: a reader thread fills buffers ahead of
    ``update`` (a hash; in a thread of its own beside a ``consume``) and ``consume``. False
    when ``cancelled`` was set before the end."""
    free: queue.Queue[memoryview] = queue.Queue()
    for _ in range(_SCAN_BUFFERS):
        free.put(memoryview(bytearray(CHUNK)))
    filled: queue.Queue[tuple[memoryview, int] | BaseException | None] = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        try:
            with open(path, "rb", buffering=0) as fh:
                # a file larger than memory cannot stay cached: reading it through would only
                # evict what the next check reads, so its pages go once copied out
                drop_behind = os.fstat(fh.fileno()).st_size > _MEMORY
                position = 0
                while not stop.is_set():
                    view = free.get()
                    n = fh.readinto(view)
                    if not n:
                        break
                    if drop_behind:
                        os.posix_fadvise(fh.fileno(), position, n, os.POSIX_FADV_DONTNEED)
                    position += n
                    filled.put((view, n))
            filled.put(None)
        except BaseException as exc:  # raised in the caller's thread below
            filled.put(exc)

    reader = threading.Thread(target=read, name="sha256-scan-read", daemon=True)
    reader.start()
    offset = 0
    try:
        with ThreadPoolExecutor(1, "sha256") as hasher:  # one thread: updates stay in order
            while (item := filled.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                if cancelled is not None and cancelled.is_set():
                    return False
                view, n = item
                if consume is None:
                    if update is not None:
                        update(view[:n])
                else:
                    hashed = None if update is None else hasher.submit(update, view[:n])
                    try:
                        consume(view[:n], offset)
                    finally:
                        if hashed is not None:
                            hashed.result()
                free.put(view)
                offset += n
    finally:
        stop.set()
        free.put(memoryview(bytearray(0)))  # unblock a reader waiting for a buffer
        reader.join()
    return True


def remember_sha256(path: Path | str, stat: os.stat_result, hexdigest: str) -> None:
    """Within :func:`shared_hashes`, keep ``hexdigest``, computed by a caller that read the
    whole file (``stat`` taken before it read), for the step's other checks."""
    shared = _SHARED.get()
    if shared is not None:
        shared[_identity(path, stat)] = hexdigest


def _read_sha256(path: Path | str) -> str:
    if os.path.getsize(path) < _READ_AHEAD_FROM:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    digest = hashlib.sha256()
    _read_ahead(path, digest.update, None)
    return digest.hexdigest()


class _HashesAhead:
    """Files hashed by background threads ahead of the checks that need them; each file is
    read by whichever comes first, a thread or a check (which then keeps it)."""

    def __init__(self, paths: Sequence[Path], workers: int) -> None:
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._started: dict[tuple[str, int, int, int], Future[str | None]] = {}
        self._taken: set[tuple[str, int, int, int]] = set()
        self._waiting = [(key, p) for p in paths if (key := _identity_if_file(p)) is not None]
        self._threads = [
            threading.Thread(target=self._work, name="sha256-ahead", daemon=True)
            for _ in range(min(workers, len(self._waiting)))
        ]
        for thread in self._threads:
            thread.start()

    def take(self, key: tuple[str, int, int, int]) -> Future[str | None] | None:
        """The hash of the file with identity ``key`` if a thread started it, else None (and
        no thread will start it: the caller reads it)."""
        with self._lock:
            self._taken.add(key)
            return self._started.get(key)

    def _next(self) -> tuple[tuple[str, int, int, int], Path, Future[str | None]] | None:
        with self._lock:
            while self._waiting and not self._cancelled.is_set():
                key, path = self._waiting.pop(0)
                if key not in self._taken:
                    self._taken.add(key)
                    self._started[key] = Future()
                    return key, path, self._started[key]
            return None

    def _work(self) -> None:
        while (item := self._next()) is not None:
            key, path, future = item
            try:
                digest = hashlib.sha256()
                done = _read_ahead(path, digest.update, None, self._cancelled)
                # the bytes read are the ones of ``key`` only if the identity held throughout
                same = done and _identity(path, os.stat(path)) == key
                future.set_result(digest.hexdigest() if same else None)
            except OSError:
                future.set_result(None)  # the check that wants it reads it and reports

    def close(self) -> None:
        self._cancelled.set()
        for thread in self._threads:
            thread.join()


_AHEAD: _HashesAhead | None = None


def _identity_if_file(path: Path) -> tuple[str, int, int, int] | None:
    try:
        return _identity(path, os.stat(path))
    except OSError:
        return None  # gone: the check that wants it says so


def _hashed_ahead(key: tuple[str, int, int, int]) -> str | None:
    ahead = None if _AHEAD is None else _AHEAD.take(key)
    return None if ahead is None else ahead.result()


@contextmanager
def hashes_ahead(paths: Sequence[Path], workers: int) -> Iterator[None]:
    """Within the block, ``workers`` threads hash ``paths`` (in that order) while the caller
    runs checks: a check that hashes one of them (same path, size, mtime and inode) takes that
    hash instead of reading the file again, and one that comes first reads it itself. For a
    caller that checks files one after another on a machine with idle cores and disk
    bandwidth (``verify``: a 27 GB source hashed while the 13.5 GB output is, 38 s for both
    here against 56 s in turn). Leaving the block stops the threads within one chunk."""
    global _AHEAD
    if _AHEAD is not None or workers < 1 or not paths:
        yield
        return
    _AHEAD = _HashesAhead(paths, workers)
    try:
        yield
    finally:
        ahead, _AHEAD = _AHEAD, None
        ahead.close()


def git_blob_header(size: int) -> bytes:
    """What git hashes before a blob's bytes: ``b"blob <size>\\0"``."""
    return f"blob {size}\0".encode()


def git_blob_sha1(path: Path | str) -> str:
    """Git's object id of a file: sha1 of :func:`git_blob_header` followed by its bytes."""
    with open(path, "rb") as fh:
        header = git_blob_header(os.fstat(fh.fileno()).st_size)
        return hashlib.file_digest(
            fh, lambda: hashlib.sha1(header, usedforsecurity=False)
        ).hexdigest()


def sha256sums_bytes(entries: Mapping[str, str], first: str | None = None) -> bytes:
    """``<sha>  <name>`` lines, the format ``sha256sum -c`` reads (UTF-8): ``first`` (when given)
    on line 1, the others sorted by name. Readers that take line 1 as *the* file's hash (the
    WMTP trainer's ``verify_storage.py`` does, for the weights) need the order."""
    if first is not None and first not in entries:
        raise KeyError(f"{first!r} is not among the SHA256SUMS entries")
    order = sorted(entries, key=lambda name: (name != first, name))
    return "".join(f"{entries[name]}  {name}\n" for name in order).encode()


def read_sha256sums(path: Path | str) -> dict[str, str]:
    """Parse a ``SHA256SUMS`` file into ``{name: sha}``; malformed lines raise with their number."""
    entries: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        match = _SUMS_LINE.match(line)
        if match is None:
            raise ChecksumFileError(
                f"{path}: line {number} is not '<64 hex sha256>  <file name>': {line[:120]!r}"
            )
        entries[match.group(2)] = match.group(1)
    return entries
