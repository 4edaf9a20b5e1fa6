"""Dagster metadata a person can read in the UI: paths, sizes, hashes."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


def file_entries(prefix: str, path: Path, sha256: str) -> dict[str, dg.MetadataValue]:
    """Path, size and SHA256 of one stored file, under keys starting with ``prefix``."""
    return {
        f"{prefix}_path": dg.MetadataValue.path(str(path)),
        f"{prefix}_size_bytes": dg.MetadataValue.int(path.stat().st_size),
        f"{prefix}_sha256": dg.MetadataValue.text(sha256),
    }


def files_table(files: dict[str, str], sizes: dict[str, int]) -> dg.MetadataValue:
    """A markdown table of every file of an artifact."""
    rows = ["| file | size (bytes) | SHA256 |", "|---|---:|---|"]
    rows += [f"| `{name}` | {sizes.get(name, 0):,} | `{sha}` |" for name, sha in files.items()]
    return dg.MetadataValue.md("\n".join(rows))
