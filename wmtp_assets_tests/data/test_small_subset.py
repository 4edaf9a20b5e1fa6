from __future__ import annotations

import json
from pathlib import Path

import pytest

from wmtp_assets.data.pipeline import process_split
from wmtp_assets.data.small_subset import (
    IndexMismatchError,
    build_small_subset,
    select_lines,
    small_limit,
)
from wmtp_assets.files.layout import Layout
from wmtp_assets_tests.data.conftest import mirror_files


@pytest.fixture(scope="module")
def processed(mirror: Path, tokenizer: Path, tmp_path_factory: pytest.TempPathFactory) -> Layout:
    layout = Layout(tmp_path_factory.mktemp("storage"))
    for key in ("codecontests.train", "humaneval.test", "mbpp.test"):
        dataset = key.split(".")[0]
        process_split(key, mirror_files(mirror, key), layout.dataset(dataset), tokenizer, workers=1)
    return layout


def test_limits() -> None:
    assert (small_limit("train"), small_limit("valid"), small_limit("test")) == (100, 32, 32)


def test_selection_is_balanced_seeded_and_bounded() -> None:
    correct, incorrect = list(range(0, 1000, 2)), list(range(1, 1000, 2))
    a = select_lines(correct, incorrect, 32, seed=0)
    assert (len(a[0]), len(a[1])) == (16, 16)
    assert a == select_lines(correct, incorrect, 32, seed=0)
    assert a != select_lines(correct, incorrect, 32, seed=1)
    assert a[0] != correct[:16]  # a sample, not the first N
    assert [len(x) for x in select_lines(correct, [7, 9], 32, seed=0)] == [30, 2]
    assert [len(x) for x in select_lines([], incorrect, 32, seed=0)] == [0, 32]
    assert [len(x) for x in select_lines([1], [2], 32, seed=0)] == [1, 1]


def test_lines_are_copied_byte_for_byte(processed: Layout) -> None:
    dirs = processed.dataset("codecontests")
    report = build_small_subset("codecontests.train", dirs, limit=6, seed=3)
    assert (report.records, report.correct, report.incorrect) == (6, 3, 3)
    lines = report.path.read_bytes().splitlines(keepends=True)
    source = dirs.jsonl("train").read_bytes().splitlines(keepends=True)
    positions = [source.index(line) for line in lines]
    assert positions == sorted(positions) and len(lines) == 6
    assert {json.loads(line)["is_correct"] for line in lines} == {True, False}
    assert (
        report.path == processed.root / "datasets_local_small/codecontests_small/train_small.jsonl"
    )
    again = build_small_subset("codecontests.train", dirs, limit=6, seed=3)
    assert again.path.read_bytes() == b"".join(lines)


def test_small_split_takes_everything_and_large_one_32(processed: Layout) -> None:
    mbpp = build_small_subset("mbpp.test", processed.dataset("mbpp"))
    assert mbpp.records == 3 and mbpp.incorrect == 0
    humaneval = build_small_subset("humaneval.test", processed.dataset("humaneval"))
    assert humaneval.records == min(
        32, len(processed.dataset("humaneval").jsonl("test").read_bytes().splitlines())
    )


def test_a_jsonl_that_is_not_the_indexed_one_is_refused(tmp_path: Path, processed: Layout) -> None:
    dirs = processed.dataset("mbpp")
    jsonl = dirs.jsonl("test")
    original = jsonl.read_bytes()
    small = dirs.small_jsonl("test")
    small.unlink(missing_ok=True)
    jsonl.write_bytes(original + original.splitlines(keepends=True)[0])
    try:
        with pytest.raises(IndexMismatchError, match="is not the file"):
            build_small_subset("mbpp.test", dirs)
        assert not small.exists()
    finally:
        jsonl.write_bytes(original)
