"""Putting one upstream file's bytes into a staged path, and the digests that prove them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from wmtp_assets.files.hashing import CHUNK, git_blob_header, git_blob_sha1, sha256_file
from wmtp_assets.sources.progress import ProgressMeter


class Digests(NamedTuple):
    """Hashes of bytes that were transferred; ``git_blob_id`` only when it was asked for."""

    sha256: str
    git_blob_id: str | None = None


Transfer = Callable[[str, Path], Digests]
"""Write the repo file ``path`` to the staged file ``target``; return the digests of its bytes."""


def file_digests(path: Path, *, git_blob: bool) -> Digests:
    """Digests of a file already on disk (a downloader wrote it without hashing)."""
    return Digests(sha256_file(path), git_blob_sha1(path) if git_blob else None)


def copy_and_hash(
    src: Path, dst: Path, *, git_blob: bool = False, meter: ProgressMeter | None = None
) -> Digests:
    """Copy ``src`` to the new file ``dst`` in one read pass, hashing each chunk as it is written.

    Hand-written rather than ``shutil.copyfile`` + a second hashing pass: one read of a 14 GB
    checkpoint instead of two, with progress. The source's mtime is kept on ``dst`` so an
    unversioned mirror file can later be recognised as unchanged.
    """
    sha256 = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        stat = os.fstat(fin.fileno())
        sha1 = (
            hashlib.sha1(git_blob_header(stat.st_size), usedforsecurity=False) if git_blob else None
        )
        while chunk := fin.read(CHUNK):
            sha256.update(chunk)
            if sha1 is not None:
                sha1.update(chunk)
            fout.write(chunk)
            if meter is not None:
                meter.advance(len(chunk))
    os.utime(dst, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    if meter is not None:
        meter.finish()
    return Digests(sha256.hexdigest(), sha1.hexdigest() if sha1 is not None else None)
