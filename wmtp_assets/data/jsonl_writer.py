"""Streaming JSONL output: one record per line, line numbers and SHA256 computed as written.

Lines are ``model_dump_json()`` of the record models: UTF-8 without ``\\u`` escapes for non-ASCII
(``ensure_ascii=False``), field order as declared, no spaces, ``\\n`` terminated. Writers only ever
write to temporary files (``Staging`` in ``staging.py`` decides when they become artifacts), and
shard outputs are joined with ``concatenate``, which hashes the bytes on the way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel

BUFFER = 1 << 20


class JsonlWriter:
    """Appends records to an open binary file; ``lines`` and ``sha256`` describe what it wrote."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._digest = hashlib.sha256()
        self.lines = 0

    def write(self, record: BaseModel) -> int:
        """Write one record; return its 0-based line number."""
        data = record.model_dump_json().encode() + b"\n"
        self._fh.write(data)
        self._digest.update(data)
        self.lines += 1
        return self.lines - 1

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def concatenate(parts: Iterable[Path], dest: BinaryIO, chunk_size: int = 8 << 20) -> str:
    """Append ``parts`` to ``dest`` in order, deleting each once copied; return the SHA256 of
    everything written (so the final file is hashed without being read again)."""
    digest = hashlib.sha256()
    for part in parts:
        with open(part, "rb") as fh:
            while chunk := fh.read(chunk_size):
                digest.update(chunk)
                dest.write(chunk)
        part.unlink()
    return digest.hexdigest()
