"""Every processed split and evaluation file loads with ``datasets`` and the features that
``schema.json`` declares, and reads back exactly the JSON that was written."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from wmtp_assets.data.eval_files import write_eval_files
from wmtp_assets.data.partitions import PARTITION_KEYS
from wmtp_assets.data.pipeline import process_split
from wmtp_assets.files.layout import Layout
from wmtp_assets_tests.data.conftest import mirror_files


@pytest.fixture(scope="module")
def processed(mirror: Path, tokenizer: Path, tmp_path_factory: pytest.TempPathFactory) -> Layout:
    layout = Layout(tmp_path_factory.mktemp("storage"))
    for key in PARTITION_KEYS:
        dirs = layout.dataset(key.split(".")[0])
        process_split(key, mirror_files(mirror, key), dirs, tokenizer, workers=1)
        write_eval_files(key, mirror_files(mirror, key), dirs)
    return layout


def _load(path: Path, features: dict) -> list[dict]:
    loaded = datasets.load_dataset(
        "json",
        data_files=str(path),
        features=datasets.Features.from_dict(features),
        split="train",
        cache_dir=str(path.parent / ".hf-cache"),
    )
    assert loaded.features == datasets.Features.from_dict(features)
    return loaded.to_list()


@pytest.mark.parametrize("key", PARTITION_KEYS)
def test_files_load_with_the_declared_features(processed: Layout, key: str) -> None:
    dataset, split = key.split(".")
    dirs = processed.dataset(dataset)
    schema = json.loads(dirs.schema.read_bytes())
    files = {"<split>.jsonl": dirs.jsonl(split)}
    if dataset == "codecontests" and split != "train":
        files["<split>_eval.jsonl"] = dirs.eval_jsonl(split)
    assert set(files) <= set(schema["features"])
    for name, path in files.items():
        written = [json.loads(line) for line in path.read_bytes().splitlines()]
        assert written and _load(path, schema["features"][name]) == written
