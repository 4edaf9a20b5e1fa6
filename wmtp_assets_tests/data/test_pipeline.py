"""``process_split``: what a split publishes (JSONL, index, stats, summary) and what it keeps,
drops and counts."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import sentencepiece as spm

from wmtp_assets.data import convert_codecontests, pipeline
from wmtp_assets.data.pipeline import judge, process_split
from wmtp_assets.data.problem_index import ProblemIndex
from wmtp_assets.data.records import RECORD_MODELS, CodeContestsRecord
from wmtp_assets.data.stats import SplitStats
from wmtp_assets.data.token_count import TokenCounter
from wmtp_assets.demo.dataset_mirror import (
    CODECHEF,
    CODEFORCES,
    CPP,
    HACKEREARTH,
    PYTHON2,
    PYTHON3,
    codecontests_demo_splits,
    codecontests_row,
    write_codecontests_parquet,
)
from wmtp_assets.files.layout import DatasetDirs, Layout
from wmtp_assets_tests.data.conftest import mirror_files, write_codecontests_with_bytes


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _assert_consistent(dirs: DatasetDirs, split: str, tokenizer: Path) -> None:
    """Index, stats and JSONL describe each other exactly."""
    jsonl = dirs.jsonl(split)
    records = _records(jsonl)
    model = RECORD_MODELS[dirs.root.name]
    for line in jsonl.read_bytes().splitlines():
        assert model.model_validate_json(line).model_dump_json().encode() == line
    index = ProblemIndex.model_validate_json(dirs.problem_index(split).read_bytes())
    stats = SplitStats.model_validate_json(dirs.stats_file(split).read_bytes())
    sha = hashlib.sha256(jsonl.read_bytes()).hexdigest()
    assert index.jsonl_sha256 == stats.jsonl_sha256 == sha
    assert index.records == stats.records == len(records)
    assert len({r["task_id"] for r in records}) == len(records)
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    seen: list[int] = []
    for key, entry in index.problem_index_map.items():
        for label in ("correct", "incorrect"):
            lines = getattr(entry, f"{label}_indices")
            lengths = getattr(entry, f"{label}_token_lengths")
            for number, length in zip(lines, lengths, strict=True):
                record = records[number]
                seen.append(number)
                assert len(sp.encode(record["output"])) == length  # the output alone
                total = sum(len(sp.encode(record[f])) for f in ("instruction", "input", "output"))
                assert total <= stats.max_tokens
                if dirs.root.name == "codecontests":
                    assert record["metadata"]["problem_key"] == key
                    assert record["task_id"].startswith(f"{key}_{label}_")
                    assert record["is_correct"] is (label == "correct")
                    assert record["metadata"]["difficulty"] == entry.difficulty
                    expected = {"is_correct": label == "correct", "difficulty": entry.difficulty}
                else:
                    assert record["task_id"] == key and label == "correct"
                    expected = {}
                line = index.metadata[number].model_dump(exclude_none=True)
                assert line == expected | {"problem_id": key}
    assert sorted(seen) == list(range(len(records))) and len(index.metadata) == len(records)
    assert sum(stats.token_length_counts.values()) == stats.records


def test_codecontests_train_from_two_shards(mirror: Path, layout: Layout, tokenizer: Path) -> None:
    files = mirror_files(mirror, "codecontests.train")
    assert [f.name for f in files] == [
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
    ]
    dirs = layout.dataset("codecontests")
    report = process_split("codecontests.train", files[::-1], dirs, tokenizer, workers=2)
    assert (report.units, report.processes) == (2, 2)
    stats = report.stats
    assert (stats.records, stats.correct, stats.incorrect) == (18, 10, 8)
    assert stats.dropped == {
        "language": 13,
        "invalid_text": 0,
        "empty": 2,
        "not_python": 0,
        "too_long": 1,
    }
    assert (stats.problems_read, stats.problems_indexed) == (6, 5)
    assert stats.input_files == [f.name for f in files]
    _assert_consistent(dirs, "train", tokenizer)
    index = ProblemIndex.model_validate_json(dirs.problem_index("train").read_bytes())
    # names repeat across sources and shards; the popcount problem has no Python solution
    assert list(index.problem_index_map) == [
        "1000_A. Sum of Numbers",
        "palindromes",
        "1001_B. Adding Up",
        "palindromes#2",
        "sumsum",
    ]
    records = _records(dirs.jsonl("train"))
    assert records[0]["task_id"] == "1000_A. Sum of Numbers_correct_0"
    assert "palindromes#2_incorrect_0" in {r["task_id"] for r in records}
    # the trainer groups by group 1 of this pattern: each group is one upstream problem (the two
    # "palindromes" rows come from different sources and shards)
    pattern = re.compile(r"^(.+?)_(correct|incorrect)_\d+$")
    groups: dict[str, set[int]] = {}
    for record in records:
        groups.setdefault(pattern.match(record["task_id"]).group(1), set()).add(
            record["metadata"]["source"]
        )
    assert groups == {
        "1000_A. Sum of Numbers": {CODEFORCES},
        "palindromes": {CODECHEF},
        "1001_B. Adding Up": {CODEFORCES},
        "palindromes#2": {HACKEREARTH},
        "sumsum": {HACKEREARTH},
    }
    assert json.loads(report.stats_file.read_bytes()) == json.loads(stats.model_dump_json())
    schema = json.loads(report.schema_file.read_bytes())
    assert "is_correct" in schema["required_fields"]
    assert report.summary_file.exists()
    assert not [p for p in dirs.root.rglob(".*tmp-*")]


@pytest.mark.parametrize(
    ("key", "records"),
    [
        ("codecontests.valid", 7),
        ("codecontests.test", 7),
        ("mbpp.train", 3),
        ("mbpp.validation", 2),
        ("mbpp.test", 3),
    ],
)
def test_single_shard_partitions(
    mirror: Path, layout: Layout, tokenizer: Path, key: str, records: int
) -> None:
    dataset, split = key.split(".")
    report = process_split(
        key, mirror_files(mirror, key), layout.dataset(dataset), tokenizer, workers=2
    )
    assert (report.units, report.processes, report.stats.records) == (1, 1, records)
    _assert_consistent(layout.dataset(dataset), split, tokenizer)


def test_summary_covers_every_split_processed(
    mirror: Path, layout: Layout, tokenizer: Path
) -> None:
    dirs = layout.dataset("mbpp")
    for key in ("mbpp.train", "mbpp.test"):
        report = process_split(key, mirror_files(mirror, key), dirs, tokenizer, workers=1)
    summary = json.loads(report.summary_file.read_bytes())
    assert sorted(summary["splits"]) == ["test", "train"]
    assert summary["totals"]["records"] == 6


def test_output_does_not_depend_on_workers_or_units(
    tmp_path: Path, layout: Layout, tokenizer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [row for shard in codecontests_demo_splits()["train"] for row in shard]
    shard = write_codecontests_parquet(
        tmp_path / "train-00000-of-00001.parquet", rows, row_group_size=1
    )
    outputs = []
    for workers, unit_rows in ((1, 64), (2, 1), (1, 1)):
        monkeypatch.setattr(pipeline, "MIN_UNIT_ROWS", unit_rows)
        dirs = Layout(tmp_path / f"s{workers}{unit_rows}").dataset("codecontests")
        report = process_split("codecontests.train", [shard], dirs, tokenizer, workers=workers)
        assert report.units == (1 if unit_rows == 64 else 6)
        outputs.append((dirs.jsonl("train").read_bytes(), dirs.problem_index("train").read_bytes()))
    assert outputs[0] == outputs[1] == outputs[2]


def test_judge_limit_is_inclusive(tokenizer: Path) -> None:
    counter = TokenCounter(tokenizer)
    row = codecontests_row(
        "p", "Sum two numbers.", public_tests=[("1 2\n", "3\n")], solutions=[(PYTHON3, "print(3)")]
    )
    problem = convert_codecontests.convert(row, "p")
    record = problem.candidates[0].record
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    output = len(sp.encode(record.output))
    total = len(sp.encode(record.instruction)) + len(sp.encode(record.input)) + output
    assert judge([problem], counter, total) == [[(total, output)]]
    assert judge([problem], counter, total - 1) == [["too_long"]]


def test_invalid_text_and_bad_problems_are_counted(
    tmp_path: Path, layout: Layout, tokenizer: Path
) -> None:
    first = codecontests_row(
        "p",
        "Print 1.",
        solutions=[
            (PYTHON3, "print(1)"),
            (PYTHON3, "placeholder"),
            (PYTHON3, "print(1)\x00"),
            (PYTHON3, "x = 1\n" * 200_000),  # 1.2 MB: over the limit, never tokenized
        ],
    )
    first["solutions"]["solution"][1] = b"print('\xff')"
    bad_description = codecontests_row("q", "placeholder", solutions=[(PYTHON3, "print(2)")])
    bad_description["description"] = b"Bad \xfe description"
    rows = [
        first,
        bad_description,
        codecontests_row("r", "C++ only", solutions=[(CPP, "int main(){}")]),
        codecontests_row("p", "Same name again", solutions=[(PYTHON3, "print(3)")]),
        codecontests_row("p", "And again", incorrect_solutions=[(PYTHON3, "print(4)")]),
    ]
    shard = write_codecontests_with_bytes(tmp_path / "test-00000-of-00001.parquet", rows)
    dirs = layout.dataset("codecontests")
    report = process_split("codecontests.test", [shard], dirs, tokenizer, workers=1)
    assert report.stats.dropped == {
        "language": 1,
        "invalid_text": 3,
        "empty": 0,
        "not_python": 0,
        "too_long": 1,
    }
    assert [r["task_id"] for r in _records(dirs.jsonl("test"))] == [
        "p_correct_0",
        "p#2_correct_0",
        "p#3_incorrect_0",
    ]
    _assert_consistent(dirs, "test", tokenizer)


def test_empty_split_publishes_empty_outputs(
    tmp_path: Path, layout: Layout, tokenizer: Path
) -> None:
    shard = write_codecontests_parquet(tmp_path / "valid-00000-of-00001.parquet", [])
    dirs = layout.dataset("codecontests")
    report = process_split("codecontests.valid", [shard], dirs, tokenizer)
    assert dirs.jsonl("valid").read_bytes() == b""
    assert report.stats.records == report.stats.problems_read == 0
    assert report.stats.token_lengths.p50 is None
    index = ProblemIndex.model_validate_json(dirs.problem_index("valid").read_bytes())
    assert index.problem_index_map == {} and index.metadata == []
    assert index.stats.total == index.stats.n_problems == 0


def test_records_are_valid_models(mirror: Path, layout: Layout, tokenizer: Path) -> None:
    dirs = layout.dataset("codecontests")
    process_split("codecontests.valid", mirror_files(mirror, "codecontests.valid"), dirs, tokenizer)
    for line in dirs.jsonl("valid").read_bytes().splitlines():
        CodeContestsRecord.model_validate_json(line)


def test_solutions_labelled_python_that_are_not_python_are_dropped_and_counted(
    tmp_path: Path, layout: Layout, tokenizer: Path
) -> None:
    """Issue 18: a C++ solution labelled Python 3 became a Python record."""
    cpp = '#include <cstdio>\nint main(){int n;scanf("%d",&n);printf("%d", n);}\n'
    rows = [
        codecontests_row(
            "mixed",
            "Print n.",
            solutions=[
                (PYTHON3, cpp),  # C++ labelled Python 3
                (PYTHON2, cpp),  # C++ labelled Python 2
                (PYTHON3, "print(int(input()))\n"),
                (PYTHON2, "n = input()\nprint n\n"),  # Python 2 only: kept as Python 2
                (PYTHON3, "n = input()\nprint n\n"),  # ... but not Python 3
            ],
        )
    ]
    shard = write_codecontests_parquet(tmp_path / "test-00000-of-00001.parquet", rows)
    dirs = layout.dataset("codecontests")
    report = process_split("codecontests.test", [shard], dirs, tokenizer, workers=1)
    assert report.stats.dropped["not_python"] == 3
    assert [r["task_id"] for r in _records(dirs.jsonl("test"))] == [
        "mixed_correct_2",
        "mixed_correct_3",
    ]
    stored = SplitStats.model_validate_json(dirs.stats_file("test").read_bytes())
    assert stored.dropped["not_python"] == 3
