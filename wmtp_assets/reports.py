"""What the CLI prints and writes: text tables, the stored-artifact inventory, and
``asset_inventory.md`` (entry-point layer; every table is formatted here, once).

Model files, sizes and SHA256s come from each ``metadata.json``; dataset files, counts and
SHA256s from each split's stats file. The records are what the checks verify, so an inventory
is only as trustworthy as the check results printed beside it (``wmtp-assets report``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from wmtp_assets.data.partitions import PARTITION_KEYS, Partition
from wmtp_assets.data.stats import SplitStats
from wmtp_assets.files.atomic import atomic_write_text
from wmtp_assets.files.layout import MODEL_FOLDERS, Layout
from wmtp_assets.graph_runs import AssetRow, CheckRow


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A fixed-width table for the terminal, columns as wide as their widest cell."""
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def asset_table(rows: Sequence[AssetRow]) -> str:
    return text_table(
        ("asset", "partition", "path", "size", "sha256", "checks"),
        [
            (
                r.asset,
                r.partition,
                r.path,
                f"{r.size_bytes:,}" if r.size_bytes is not None else "",
                r.sha256[:12],
                r.checks,
            )
            for r in rows
        ],
    )


def check_table(rows: Sequence[CheckRow]) -> str:
    return text_table(
        ("asset", "partition", "check", "result", "summary"),
        [
            (r.asset, r.partition, r.check, "ok" if r.passed else "FAIL", r.summary[:120])
            for r in rows
        ],
    )


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


def _unreadable(artifact: str, path: Path, layout: Layout, exc: Exception) -> InventoryRow:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InventoryRow(
        artifact=artifact,
        path=_relative(path, layout.root),
        size_bytes=path.stat().st_size if path.is_file() else 0,
        sha256="",
        counts=f"UNREADABLE: {reason}",
    )


def model_rows(layout: Layout) -> list[InventoryRow]:
    rows: list[InventoryRow] = []
    for key in MODEL_FOLDERS:
        dirs = layout.model(key)
        try:
            metadata = json.loads(dirs.metadata.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            rows.append(_unreadable(f"models/{key}", dirs.metadata, layout, exc))
            continue
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
        try:
            stats = SplitStats.model_validate_json(stats_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            rows.append(_unreadable(f"datasets/stats [{key}]", stats_file, layout, exc))
            continue
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


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_inventory_markdown(
    dest: Path, layout: Layout, rows: Sequence[InventoryRow], checks: Sequence[CheckRow]
) -> Path:
    failed = [c for c in checks if not c.passed]
    lines = [
        "# Asset inventory",
        "",
        f"Generated by `wmtp-assets report` at {datetime.now(UTC).isoformat(timespec='seconds')} "
        f"from `{layout.root}`. Check results are from a fresh run of every check at that time: "
        f"{len(checks) - len(failed)} passed, {len(failed)} failed.",
        "",
        "## Files",
        "",
        "| artifact | path | size (bytes) | SHA256 | counts |",
        "|---|---|---:|---|---|",
        *(
            f"| {r.artifact} | `{r.path}` | {r.size_bytes:,} | `{r.sha256 or '-'}` | "
            f"{_cell(r.counts)} |"
            for r in rows
        ),
        "",
        "## Checks",
        "",
        "| asset | partition | check | result | summary |",
        "|---|---|---|---|---|",
        *(
            f"| {c.asset} | {c.partition or '-'} | {c.check} | "
            f"{'ok' if c.passed else '**FAIL**'} | {_cell(c.summary)} |"
            for c in checks
        ),
        "",
    ]
    return atomic_write_text(dest, "\n".join(lines))
