"""Streaming JSONL output: one record per line; line numbers and SHA256 computed as written.

Lines are ``model_dump_json()`` of the record models: UTF-8 without ``\\u`` escapes for non-ASCII
(``ensure_ascii=False``), field order as declared, no spaces, ``\\n`` terminated. Each unit of work
writes its own part file; ``Concatenation`` joins the parts in order into the split's file while
later units still run, hashing the bytes on the way. Everything is written to temporary files
(``files.staging.Staging`` decides when they become artifacts).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel

BUFFER = 1 << 20


class JsonlWriter:
    """Appends records to an open binary file, counting the lines it wrote."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.lines = 0

    def write(self, record: BaseModel) -> int:
        """Write one record; return its 0-based line number."""
        self._fh.write(record.model_dump_json().encode() + b"\n")
        self.lines += 1
        return self.lines - 1


class Concatenation:
    """Appends whole part files to ``dest`` as they become ready, deleting each once copied, and
    hashes the bytes on the way (so the final file is never read again just to hash it)."""

    def __init__(self, dest: BinaryIO, chunk_size: int = 8 << 20) -> None:
        self._dest = dest
        self._chunk_size = chunk_size
        self._digest = hashlib.sha256()

    def append(self, part: Path) -> None:
        with open(part, "rb") as fh:
            while chunk := fh.read(self._chunk_size):
                self._digest.update(chunk)
                self._dest.write(chunk)
        part.unlink()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()
