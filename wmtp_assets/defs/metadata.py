"""Dagster metadata a person can read in the UI (paths, sizes, hashes), and the seal of what a
materialization published."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import dagster as dg

from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.validate.sealed import seal_files

SEALED_FILES = "sealed_files"
"""Metadata key of a materialization's seal: JSON ``{path under the storage root: SHA256}``."""


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


def sealed_files(
    root: Path, paths: Iterable[Path] = (), known: Mapping[Path, str] | None = None
) -> dict[str, dg.MetadataValue]:
    """The seal of every file this materialization published (``paths``, and those in ``known``
    whose SHA256 the writer computed), for the ``unchanged_since_materialization`` check."""
    return {SEALED_FILES: dg.MetadataValue.json(seal_files(root, paths, known))}


def model_sealed_files(
    root: Path, dirs: ModelDirs, files: Mapping[str, str]
) -> dict[str, dg.MetadataValue]:
    """The seal of a model artifact: the files ``metadata.json`` records (``files``, hashed by
    their writer) and ``metadata.json`` itself."""
    return sealed_files(root, [dirs.metadata], {dirs.root / rel: sha for rel, sha in files.items()})
