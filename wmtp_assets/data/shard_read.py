"""Upstream shards as processing reads them: the bytes parsed are the bytes hashed, in one read.

``raw/SOURCE.json`` records each shard's SHA256 when it was fetched; disks rot after that, and a
rotten shard can still decode (a flipped byte inside a solution's text). So the pipeline does
not trust the folder: :func:`open_verified` reads a shard once, hashing every chunk as it
arrives (``files.hashing.sha256_scan``), compares the hash with the record and only then parses
the same bytes in memory (the key column and the row-group layout). The worker processes that
convert the row groups read the file again; :func:`check_unchanged` makes them refuse a file
whose size, mtime or inode differ from those of the hashed read (a rewrite in between).
Memory: one shard at a time (CodeContests' largest is ~0.2 GB).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from wmtp_assets.data.split_keys import DataError
from wmtp_assets.files.hashing import file_identity, sha256_scan
from wmtp_assets.sources.provenance import SOURCE_FILE


class ShardMismatchError(DataError):
    """A shard whose bytes are not those ``SOURCE.json`` records, or that changed while read."""

    def __init__(self, message: str, file: Path, expected: str, found: str) -> None:
        super().__init__(message)
        self.file, self.expected, self.found = str(file), expected, found


def open_verified(path: Path, expected_sha256: str | None) -> tuple[pq.ParquetFile, str, list[int]]:
    """The shard parsed from the bytes of one read, its SHA256 and its identity before the read.

    Raises :class:`ShardMismatchError` naming the file when ``expected_sha256`` is given and the
    bytes hash otherwise, or when the file changed during the read."""
    identity = file_identity(path)
    data = bytearray(os.stat(path).st_size)

    def keep(chunk: memoryview, offset: int) -> None:
        data[offset : offset + len(chunk)] = chunk

    found = sha256_scan(path, keep)
    if expected_sha256 is not None and found != expected_sha256:
        raise ShardMismatchError(
            f"{path}: SHA256 {found} != {SOURCE_FILE} {expected_sha256}; the shard changed since "
            "it was fetched (rot or an edit): nothing was processed. Fetch it again",
            path,
            expected_sha256,
            found,
        )
    check_unchanged(path, identity)
    return pq.ParquetFile(pa.BufferReader(pa.py_buffer(data))), found, identity


def check_unchanged(path: Path | str, identity: list[int]) -> None:
    """Raise :class:`ShardMismatchError` when ``path``'s size, mtime or inode are no longer
    ``identity`` (those of the read that hashed it)."""
    now = file_identity(path)
    if now != identity:
        raise ShardMismatchError(
            f"{path}: changed while being processed (size, mtime, inode {now} != {identity} "
            "when hashed); run again",
            Path(path),
            str(identity),
            str(now),
        )
