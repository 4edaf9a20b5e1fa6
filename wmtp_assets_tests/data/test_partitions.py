from __future__ import annotations

from pathlib import Path

import pytest

from wmtp_assets.data.partitions import DATASETS, PARTITION_KEYS, Partition, UnknownPartitionError


def test_the_seven_keys() -> None:
    assert PARTITION_KEYS == (
        "codecontests.train",
        "codecontests.valid",
        "codecontests.test",
        "mbpp.train",
        "mbpp.validation",
        "mbpp.test",
        "humaneval.test",
    )
    assert [Partition.parse(k).key for k in PARTITION_KEYS] == list(PARTITION_KEYS)


@pytest.mark.parametrize(
    "key", ["codecontests", "codecontests.validation", "humaneval.train", "mbpp.prompt", "x.test"]
)
def test_unknown_keys_are_refused(key: str) -> None:
    with pytest.raises(UnknownPartitionError):
        Partition.parse(key)


def test_repos_and_revisions() -> None:
    assert DATASETS["codecontests"].repo_id == "deepmind/code_contests"
    assert DATASETS["codecontests"].revision == "802411c3010cb00d1b05bad57ca77365a3c699d6"
    assert DATASETS["mbpp"].repo_id == "google-research-datasets/mbpp"
    assert DATASETS["humaneval"].repo_id == "openai/openai_humaneval"


@pytest.mark.parametrize(
    ("key", "path", "expected"),
    [
        ("codecontests.train", "data/train-00003-of-00039-e3822fccad6e083a.parquet", True),
        ("codecontests.train", "data/test-00000-of-00001-9c49eeff30aacaa8.parquet", False),
        ("codecontests.valid", "data/valid-00000-of-00001-5e672c5751f060d3.parquet", True),
        ("codecontests.train", "x/data/train-00000-of-00039.parquet", False),
        ("mbpp.test", "full/test-00000-of-00001.parquet", True),
        ("mbpp.test", "sanitized/test-00000-of-00001.parquet", False),
        ("mbpp.train", "full/prompt-00000-of-00001.parquet", False),
        ("humaneval.test", "openai_humaneval/test-00000-of-00001.parquet", True),
    ],
)
def test_repo_paths_of_a_split(key: str, path: str, expected: bool) -> None:
    partition = Partition.parse(key)
    assert partition.spec.matches(path, partition.split) is expected


def test_files_in_shard_order(tmp_path: Path) -> None:
    for name in ("train-00010-of-00039.parquet", "train-00002-of-00039.parquet", "test-0.parquet"):
        (tmp_path / "data").mkdir(exist_ok=True)
        (tmp_path / "data" / name).touch()
    files = Partition.parse("codecontests.train").files_in(tmp_path)
    assert [f.name for f in files] == [
        "train-00002-of-00039.parquet",
        "train-00010-of-00039.parquet",
    ]
