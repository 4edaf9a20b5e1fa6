"""How checkpoint files are mapped into memory: shared, read-only, pages released after use.

Why not torch's default: ``torch.load(mmap=True)`` maps the file ``MAP_PRIVATE`` and writable,
and the kernel's overcommit accounting charges such a mapping its whole size, so a 27 GB
checkpoint is refused on a 23 GiB machine without swap ("Cannot allocate memory", REFERENCE
§10). A ``MAP_SHARED`` mapping of the same file is accepted at any size and its pages are clean
page cache, not private memory. Shared also means a write through a tensor would reach the
file on disk, so every mapping made here is then made read-only (``mprotect``): a stray
in-place op crashes the process instead of silently rewriting a raw checkpoint.

Linux-only parts (``/proc/self/maps``, ``mprotect``, ``madvise``) are no-ops elsewhere; the
mapping itself is torch's public ``set_default_mmap_options``.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import mmap
import os
import resource
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

_PROT_READ = 1
_MADV_DONTNEED = 4
_LOAD_LOCK = threading.Lock()
"""torch's default mmap flags are process-global; loads that set them take turns."""

T = TypeVar("T")


@dataclass(frozen=True)
class FileMapping:
    """One line of ``/proc/self/maps`` for a file: its address range and permissions."""

    start: int
    end: int
    perms: str
    offset: int
    """Where in the file the mapping starts."""

    @property
    def writable(self) -> bool:
        return self.perms[1] == "w"


def mappings_of(path: Path) -> list[FileMapping]:
    """This process's mappings of ``path`` (empty where ``/proc/self/maps`` does not exist)."""
    try:
        st = path.stat()
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    identity = (f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}", str(st.st_ino))
    resolved = str(path.resolve())
    found: list[FileMapping] = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        # Device and inode identify the file; overlay filesystems report the lower layer's,
        # so the path (as the kernel prints it) is accepted too.
        if len(fields) == 6 and ((fields[3], fields[4]) == identity or fields[5] == resolved):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            found.append(FileMapping(start, end, fields[1], int(fields[2], 16)))
    return found


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def load_shared_read_only(path: Path, load: Callable[[], T]) -> T:
    """Run ``load`` (a ``torch.load(path, mmap=True, ...)``) with a shared mapping of ``path``,
    then make every mapping of ``path`` read-only. Raises :class:`MappingRefusedError` when the
    kernel refuses the mapping for memory."""
    with _LOAD_LOCK, torch.serialization.set_default_mmap_options(mmap.MAP_SHARED):
        try:
            result = load()
        except RuntimeError as exc:
            if "Cannot allocate memory" in str(exc) or "unable to mmap" in str(exc):
                raise MappingRefusedError(path, exc) from exc
            raise
    for found in mappings_of(path):
        if found.writable:
            length = ctypes.c_size_t(found.end - found.start)
            _libc().mprotect(ctypes.c_void_p(found.start), length, _PROT_READ)
    return result


class MappingRefusedError(MemoryError):
    """The kernel refused to map a checkpoint: a memory limit, not a damaged file."""

    def __init__(self, path: Path, cause: BaseException) -> None:
        self.path = path
        super().__init__(
            f"{path}: the kernel refused to map {path.stat().st_size:,} bytes "
            f"({str(cause).splitlines()[0][:160]}); this is a memory limit, not a damaged file: "
            f"{memory_limits()}"
        )


def memory_limits() -> str:
    """The limits a mapping can run into, as one line: address space, overcommit, RAM."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    parts = ["RLIMIT_AS (ulimit -v) " + ("unlimited" if soft < 0 else f"{soft:,} bytes")]
    with contextlib.suppress(OSError):
        policy = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
        parts.append(f"vm.overcommit_memory={policy}")
    with contextlib.suppress(OSError):
        meminfo = dict(
            line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines()
        )
        for key in ("MemTotal", "SwapTotal", "CommitLimit", "Committed_AS"):
            if key in meminfo:
                parts.append(f"{key} {meminfo[key].strip()}")
    return ", ".join(parts)


def release_pages(tensor: torch.Tensor, source: Path) -> int:
    """Drop a used tensor's pages from the resident set, if they are a mapping of ``source``.

    Why: touched pages of a mapped checkpoint stay counted in the process's RSS (and its
    cgroup) until the mapping goes, so a streaming conversion of a 27 GB file would look 27 GB
    big. ``MADV_DONTNEED`` on these clean, never-written file pages only unmaps them: the page
    cache keeps them and a later access faults them back in unchanged. It is applied to pages
    inside a mapping of ``source`` only, never to anonymous memory (where it would zero data).
    Returns the number of bytes released (0 where not applicable).
    """
    nbytes = tensor.numel() * tensor.element_size()
    if nbytes == 0:
        return 0
    page = os.sysconf("SC_PAGE_SIZE")
    begin, end = tensor.data_ptr(), tensor.data_ptr() + nbytes
    released = 0
    for found in mappings_of(source):
        lo = max(begin, found.start) // page * page
        hi = -(-min(end, found.end) // page) * page
        if lo < hi:
            length = ctypes.c_size_t(hi - lo)
            if _libc().madvise(ctypes.c_void_p(lo), length, _MADV_DONTNEED) == 0:
                released += hi - lo
    return released


def file_range(tensor: torch.Tensor, source: Path) -> tuple[int, int] | None:
    """Where ``tensor``'s bytes lie in ``source`` (begin, end), when it is a mapping of it."""
    pointer = tensor.data_ptr()
    for found in mappings_of(source):
        if found.start <= pointer < found.end:
            begin = found.offset + pointer - found.start
            return begin, begin + tensor.numel() * tensor.element_size()
    return None


def drop_cached(path: Path, begin: int, end: int) -> None:
    """Ask the kernel to drop ``path``'s clean pages in ``[begin, end)`` from the page cache
    (``POSIX_FADV_DONTNEED``): bytes read once then make room for those read again (the
    converted weights, hashed and checked right after). Advisory; a no-op where unsupported."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None or end <= begin:
        return
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        advise(fh.fileno(), begin, end - begin, os.POSIX_FADV_DONTNEED)
