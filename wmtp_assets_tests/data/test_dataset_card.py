"""``processed/README.md`` makes ``datasets.load_dataset(<processed folder>)`` return every row."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from wmtp_assets.data.dataset_card import card_configs, write_dataset_card
from wmtp_assets.files.layout import Layout
from wmtp_assets.settings import Settings

SPLITS = {"codecontests": ["train", "valid", "test"], "mbpp": ["train", "validation", "test"]}


def _lines(path: Path) -> list[dict[str, object]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.mark.parametrize("dataset", ["codecontests", "mbpp", "humaneval"])
def test_load_dataset_on_the_folder_returns_every_published_row(
    demo_storage: Settings, dataset: str, tmp_path: Path
) -> None:
    folder = Layout(demo_storage.storage_root).dataset(dataset).processed
    cache = str(tmp_path / "hf_cache")  # never a table cached from another folder's files
    loaded = datasets.load_dataset(str(folder), cache_dir=cache)
    splits = SPLITS.get(dataset, ["test"])
    assert sorted(loaded) == sorted(splits)  # no schema or index file read as a split
    for split in splits:
        assert loaded[split].to_list() == _lines(folder / f"{split}.jsonl"), split
    if dataset == "codecontests":
        evaluation = datasets.load_dataset(str(folder), "eval", cache_dir=cache)
        assert sorted(evaluation) == ["test", "valid"]
        for split in ("valid", "test"):
            assert evaluation[split].to_list() == _lines(folder / f"{split}_eval.jsonl")


def test_card_names_only_complete_splits(tmp_path: Path) -> None:
    dirs = Layout(tmp_path).dataset("mbpp")
    dirs.processed.mkdir(parents=True)
    dirs.stats.mkdir(parents=True)
    assert card_configs(dirs, "mbpp") == {}
    for split in ("test", "train"):
        dirs.jsonl(split).write_text('{"task_id": "1"}\n')
    dirs.stats_file("test").write_text("{}")  # train: JSONL renamed, stats not yet (mid-publish)
    assert card_configs(dirs, "mbpp") == {"default": {"test": "test.jsonl"}}
    dirs.stats_file("train").write_text("{}")
    card = write_dataset_card(dirs, "mbpp").read_text()
    header = card.split("---\n")[1]
    assert header == (
        "configs:\n- config_name: default\n  data_files:\n"
        "  - split: train\n    path: train.jsonl\n  - split: test\n    path: test.jsonl\n"
    )
    loaded = datasets.load_dataset(str(dirs.processed), cache_dir=str(tmp_path / "hf_cache"))
    assert loaded["train"].num_rows == 1
