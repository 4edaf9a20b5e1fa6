"""What is stored under the storage root, read from the artifacts' own records.

Model files, sizes and SHA256s come from each ``metadata.json``; dataset files, counts and
SHA256s from each split's stats file. The records are what the checks verify, so an inventory
is only as trustworthy as the check results printed beside it (``wmtp-assets report``).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from wmtp_assets.data.partitions import PARTITION_KEYS, Partition
from wmtp_assets.data.stats import SplitStats
from wmtp_assets.files.layout import MODEL_FOLDERS, Layout


class InventoryRow(BaseModel):
    artifact: str
    path: str
    size_bytes: int
    sha256: str
    counts: str


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def model_rows(layout: Layout) -> list[InventoryRow]:
    rows: list[InventoryRow] = []
    for key in MODEL_FOLDERS:
        dirs = layout.model(key)
        if not dirs.metadata.is_file():
            continue
        metadata = json.loads(dirs.metadata.read_text(encoding="utf-8"))
        counts = f"{metadata['n_params']:,} params, {metadata['dtype']}"
        for rel, sha in sorted(metadata["files"].items()):
            rows.append(
                InventoryRow(
                    artifact=f"models/{key}",
                    path=_relative(dirs.root / rel, layout.root),
                    size_bytes=metadata["size_bytes"].get(rel, 0),
                    sha256=sha,
                    counts=counts if rel.endswith(".safetensors") else "",
                )
            )
    return rows


def dataset_rows(layout: Layout) -> list[InventoryRow]:
    rows: list[InventoryRow] = []
    for key in PARTITION_KEYS:
        part = Partition.parse(key)
        dirs = layout.dataset(part.dataset)
        stats_file = dirs.stats_file(part.split)
        if not stats_file.is_file():
            continue
        stats = SplitStats.model_validate_json(stats_file.read_text(encoding="utf-8"))
        jsonl = dirs.jsonl(part.split)
        rows.append(
            InventoryRow(
                artifact=f"datasets/processed [{key}]",
                path=_relative(jsonl, layout.root),
                size_bytes=jsonl.stat().st_size if jsonl.is_file() else 0,
                sha256=stats.jsonl_sha256,
                counts=f"{stats.records:,} records ({stats.correct:,} correct / "
                f"{stats.incorrect:,} incorrect), {stats.problems_indexed:,} problems, "
                f"dropped {sum(stats.dropped.values()):,}",
            )
        )
        small = dirs.small_jsonl(part.split)
        if small.is_file():
            rows.append(
                InventoryRow(
                    artifact=f"datasets/small [{key}]",
                    path=_relative(small, layout.root),
                    size_bytes=small.stat().st_size,
                    sha256="",
                    counts=f"{sum(1 for _ in small.open('rb')):,} records",
                )
            )
    return rows


def inventory(layout: Layout) -> list[InventoryRow]:
    return [*model_rows(layout), *dataset_rows(layout)]
