"""``processed/README.md``: the dataset card, so ``datasets.load_dataset(<folder>)`` works.

Without a card the folder holds the JSONL beside ``schema.json`` and ``<split>_metadata.json``,
and ``load_dataset(folder)`` reads every file as one table and fails. The card's YAML header
names the data files of each split, Hugging Face's ``configs`` / ``data_files`` convention:
config ``default`` holds the published ``<split>.jsonl`` (a split counts once its stats file,
written last, exists: ``schema.PUBLICATION``), config ``eval`` (CodeContests) the
``<split>_eval.jsonl`` files. It is rewritten atomically from the files on disk whenever a split
or an eval file is published, so it names exactly what is there, in the dataset's split order.
Exact feature types are in ``schema.json`` (``features``), which the card points to.
"""

from __future__ import annotations

from pathlib import Path

from wmtp_assets.data.partitions import DATASETS
from wmtp_assets.files.atomic import atomic_write_text, sweep_tmp_of
from wmtp_assets.files.layout import DatasetDirs
from wmtp_assets.files.lock import artifact_lock


def card_configs(dirs: DatasetDirs, dataset: str) -> dict[str, dict[str, str]]:
    """``{config name: {split: file name}}`` of what is published in ``dirs``."""
    splits = DATASETS[dataset].splits
    configs = {
        "default": {
            s: dirs.jsonl(s).name
            for s in splits
            if dirs.jsonl(s).is_file() and dirs.stats_file(s).is_file()
        },
        "eval": {s: dirs.eval_jsonl(s).name for s in splits if dirs.eval_jsonl(s).is_file()},
    }
    return {name: files for name, files in configs.items() if files}


def card_text(dirs: DatasetDirs, dataset: str) -> str:
    """The card: YAML header (``configs``) and a short body saying what the files are."""
    lines = ["---", "configs:"]
    for name, files in card_configs(dirs, dataset).items():
        lines += [f"- config_name: {name}", "  data_files:"]
        for split, file_name in files.items():
            lines += [f"  - split: {split}", f"    path: {file_name}"]
    if lines[-1] == "configs:":
        lines[-1] = "configs: []"
    lines += [
        "---",
        "",
        f"# {dataset} (processed by wmtp-assets)",
        "",
        "Alpaca-format records, one JSON object per line: `instruction`, `input`, `output`,",
        "`task_id`, `metadata` (and `is_correct` for CodeContests). `schema.json` holds the",
        "field mapping, the token filter and the exact `datasets` features;",
        "`<split>_metadata.json` is the WMTP trainer's problem index.",
        "",
        "```python",
        "import datasets",
        'splits = datasets.load_dataset("path/to/processed")  # every published split',
        "```",
        "",
    ]
    return "\n".join(lines)


def write_dataset_card(dirs: DatasetDirs, dataset: str) -> Path:
    """Write ``processed/README.md`` for what is published now (atomically). Under a lock, so
    two partitions publishing at once cannot leave a card that misses one of them."""
    card = dirs.processed / "README.md"
    with artifact_lock(dirs.root / ".locks" / "card", timeout_s=60):
        sweep_tmp_of(card)  # what a killed write left
        return atomic_write_text(card, card_text(dirs, dataset))
