"""SHA256 of files and the ``SHA256SUMS`` format that ``sha256sum -c`` reads.

hashlib is used directly: coreutils ``sha256sum`` is several times slower on these machines
(REFERENCE §7), and hashing in-process lets callers hash bytes as they are written.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from wmtp_assets.files.atomic import atomic_write_text

CHUNK = 8 << 20
_SUMS_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


class ChecksumFileError(ValueError):
    """A ``SHA256SUMS`` file that cannot be parsed."""


def sha256_file(path: Path | str, chunk_size: int = CHUNK) -> str:
    """Hex SHA256 of a file, read in chunks (memory bounded by ``chunk_size``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def write_sha256sums(path: Path | str, entries: Mapping[str, str]) -> Path:
    """Write ``<sha>  <name>`` lines sorted by name, the format of ``sha256sum``."""
    lines = "".join(f"{sha}  {name}\n" for name, sha in sorted(entries.items()))
    return atomic_write_text(path, lines)


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
