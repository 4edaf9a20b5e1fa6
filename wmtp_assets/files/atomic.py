"""Atomic file writes: a reader sees either the previous file or the complete new one.

Contract: data goes to a temporary file in the destination folder (same filesystem, so the
final ``os.replace`` is atomic), is flushed and fsynced, then renamed over the destination and
the folder is fsynced. Any failure, including one of ``fsync`` or ``close`` (a full disk or an
NFS server reports late), removes the temporary file. SIGKILL at any point leaves at most a
``.<name>.tmp-*`` file, which never looks like the artifact and is swept by the next write.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

TMP_MARK = ".tmp-"


def fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_path_for(dest: Path) -> Path:
    """A unique temporary sibling of ``dest`` that no reader mistakes for the artifact."""
    return dest.with_name(f".{dest.name}{TMP_MARK}{os.getpid()}-{os.urandom(4).hex()}")


def sweep_stale_tmp(folder: Path) -> list[Path]:
    """Remove temporary files left by interrupted writes in ``folder``; return what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if entry.name.startswith(".") and TMP_MARK in entry.name and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return removed


def sweep_tmp_of(dest: Path) -> None:
    """Remove the temporaries (files or folders) an interrupted write of ``dest`` left beside it.

    Only ``dest``'s own: other artifacts in the folder may be being written by other runs. The
    caller holds the lock that serialises writes of ``dest``.
    """
    if not dest.parent.is_dir():
        return
    for stale in dest.parent.glob(f".{dest.name}{TMP_MARK}*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(dest: Path | str) -> Iterator[BinaryIO]:
    """Open a binary temporary file that replaces ``dest`` only if the block completes."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(dest)
    try:
        with open(tmp, "xb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


def atomic_write_bytes(dest: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically."""
    dest = Path(dest)
    with atomic_open(dest) as fh:
        fh.write(data)
    return dest


def atomic_write_text(dest: Path | str, text: str) -> Path:
    """Write UTF-8 ``text`` to ``dest`` atomically."""
    return atomic_write_bytes(dest, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    """``obj`` as indented, key-sorted UTF-8 JSON ending in a newline (stable bytes and hash)."""
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def atomic_write_json(dest: Path | str, obj: Any) -> Path:
    """Write ``obj`` as :func:`json_bytes` atomically."""
    return atomic_write_bytes(dest, json_bytes(obj))


def atomic_copy(src: Path | str, dest: Path | str, chunk_size: int = 16 << 20) -> Path:
    """Copy ``src`` to ``dest`` atomically (never a half-copied ``dest``)."""
    dest = Path(dest)
    with open(src, "rb") as fin, atomic_open(dest) as fout:
        shutil.copyfileobj(fin, fout, chunk_size)
    return dest
