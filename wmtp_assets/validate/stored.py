"""Which artifacts have anything in storage: what revalidation must check.

An artifact counts as stored when any one of its files exists, so a deleted ``metadata.json`` or
stats file makes the artifact's checks fail rather than drop it from revalidation.
"""

from __future__ import annotations

from wmtp_assets.data.partitions import DATASETS, PARTITION_KEYS, Partition
from wmtp_assets.files.layout import MODEL_FOLDERS, Layout


def stored_models(layout: Layout) -> list[str]:
    """Model asset names (``micro_mtp``) whose folder holds any file."""
    return [
        name
        for name in MODEL_FOLDERS
        if (root := layout.model(name).root).is_dir() and any(p.is_file() for p in root.rglob("*"))
    ]


def stored_partitions(layout: Layout) -> list[str]:
    """Partition keys with any raw shard, processed file, stats or small subset on disk."""
    stored: list[str] = []
    for key in PARTITION_KEYS:
        part = Partition.parse(key)
        dirs = layout.dataset(part.dataset)
        derived = (
            dirs.jsonl(part.split),
            dirs.problem_index(part.split),
            dirs.stats_file(part.split),
            dirs.small_jsonl(part.split),
        )
        raw = dirs.raw.glob(DATASETS[part.dataset].file_pattern(part.split))
        if any(p.exists() for p in derived) or any(p.is_file() for p in raw):
            stored.append(key)
    return stored
