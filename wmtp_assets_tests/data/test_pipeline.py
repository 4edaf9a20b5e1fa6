from __future__ import annotations

import contextlib
import hashlib
import json
import re
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sentencepiece as spm

from wmtp_assets.data import convert_codecontests, pipeline
from wmtp_assets.data.arrow_rows import _binary_type
from wmtp_assets.data.partitions import Partition
from wmtp_assets.data.pipeline import DataError, NothingKeptError, judge, process_split
from wmtp_assets.data.problem_index import ProblemIndex
from wmtp_assets.data.records import RECORD_MODELS, CodeContestsRecord
from wmtp_assets.data.shard_read import ShardMismatchError
from wmtp_assets.data.stats import SplitStats
from wmtp_assets.data.token_count import TokenCounter
from wmtp_assets.data.upstream_schema import CODECONTESTS_SCHEMA, UpstreamSchemaError
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
    write_mbpp_parquet,
)
from wmtp_assets.files.layout import DatasetDirs, Layout
from wmtp_assets.files.lock import ArtifactLockedError, artifact_lock
from wmtp_assets.files.tokenizer_identity import TokenizerMismatchError
from wmtp_assets.validate.dataset_checks import counts_match_stats, index_matches_records
from wmtp_assets.validate.outcome import guarded
from wmtp_assets_tests.data.conftest import mirror_files
from wmtp_assets_tests.files.fault_injection import Killed, count_steps, fail_at


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _all_files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != ".lock"
    )


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


def _write_with_bytes(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write CodeContests rows whose strings may be arbitrary bytes (invalid UTF-8)."""
    raw = pa.Table.from_pylist(
        rows, schema=pa.schema([f.with_type(_binary_type(f.type)) for f in CODECONTESTS_SCHEMA])
    )
    columns = [
        raw.column(i).combine_chunks().view(f.type) for i, f in enumerate(CODECONTESTS_SCHEMA)
    ]
    pq.write_table(pa.Table.from_arrays(columns, schema=CODECONTESTS_SCHEMA), path)
    return path


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
    shard = _write_with_bytes(tmp_path / "test-00000-of-00001.parquet", rows)
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


def test_no_input_files(layout: Layout, tokenizer: Path) -> None:
    with pytest.raises(
        ValueError, match=r"codecontests\.train: no upstream parquet files.*data/train-\*"
    ):
        process_split("codecontests.train", [], layout.dataset("codecontests"), tokenizer)


def test_schema_errors_name_file_and_column(
    tmp_path: Path, layout: Layout, tokenizer: Path
) -> None:
    table = pa.Table.from_pylist([codecontests_row("p", "d")], schema=CODECONTESTS_SCHEMA)
    shard = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(table.drop_columns(["solutions"]), shard)
    dirs = layout.dataset("codecontests")
    with pytest.raises(
        UpstreamSchemaError, match=r"test-00000-of-00001\.parquet: missing column 'solutions'"
    ):
        process_split("codecontests.test", [shard], dirs, tokenizer)
    assert not dirs.root.exists() or _all_files(dirs.root) == []


def test_duplicate_mbpp_ids_name_file_and_row(
    tmp_path: Path, layout: Layout, tokenizer: Path
) -> None:
    row = {
        "task_id": 11,
        "text": "t",
        "code": "c",
        "test_list": [],
        "test_setup_code": "",
        "challenge_test_list": [],
    }
    first = write_mbpp_parquet(tmp_path / "test-00000-of-00002.parquet", [row])
    second = write_mbpp_parquet(
        tmp_path / "test-00001-of-00002.parquet", [row | {"task_id": 12}, row]
    )
    with pytest.raises(
        DataError, match=r"test-00001-of-00002\.parquet: row 1: column 'task_id'.*'11' repeats"
    ):
        process_split("mbpp.test", [first, second], layout.dataset("mbpp"), tokenizer)


def test_crash_mid_split_publishes_nothing(
    mirror: Path, layout: Layout, tokenizer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = layout.dataset("codecontests")
    files = mirror_files(mirror, "codecontests.test")
    process_split("codecontests.test", files, dirs, tokenizer)
    before = {
        p: p.read_bytes()
        for p in (dirs.jsonl("test"), dirs.problem_index("test"), dirs.stats_file("test"))
    }
    real_convert, calls = convert_codecontests.convert, []

    def crash_on_second(row: dict[str, Any], key: str) -> Any:
        calls.append(key)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill, not a data error
        return real_convert(row, key)

    monkeypatch.setattr(convert_codecontests, "convert", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        process_split("codecontests.test", files, dirs, tokenizer, max_tokens=100)
    # the previous version was deleted first (one version on disk), the new one never published
    assert not [p for p in before if p.exists()]
    assert not dirs.statements_file("test").exists()
    assert not [p for p in dirs.root.rglob(".*tmp-*")]
    monkeypatch.setattr(convert_codecontests, "convert", real_convert)
    process_split("codecontests.test", files, dirs, tokenizer)
    assert {p: p.read_bytes() for p in before if p != dirs.stats_file("test")} == {
        p: b for p, b in before.items() if p != dirs.stats_file("test")
    }  # the rerun writes the same bytes (the stats differ only in their time stamp)
    monkeypatch.setattr(convert_codecontests, "convert", crash_on_second)

    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        process_split(
            "codecontests.valid", mirror_files(mirror, "codecontests.valid"), dirs, tokenizer
        )
    assert not dirs.jsonl("valid").exists() and not dirs.problem_index("valid").exists()
    assert not dirs.stats_file("valid").exists()


def test_a_failing_shard_in_the_pool_names_file_and_row(
    tmp_path: Path, layout: Layout, tokenizer: Path
) -> None:
    good = write_codecontests_parquet(
        tmp_path / "train-00000-of-00002.parquet", codecontests_demo_splits()["train"][0]
    )
    bad_row = codecontests_row("broken", "d") | {
        "solutions": {"language": [3, 3], "solution": ["x"]}
    }
    bad = write_codecontests_parquet(
        tmp_path / "train-00001-of-00002.parquet", [codecontests_row("fine", "d"), bad_row]
    )
    dirs = layout.dataset("codecontests")
    with pytest.raises(
        DataError, match=r"train-00001-of-00002\.parquet: row 1 \(problem 'broken'\)"
    ):
        process_split("codecontests.train", [good, bad], dirs, tokenizer, workers=2)
    assert _all_files(dirs.root) == []


def test_wrong_tokenizer_and_held_lock(mirror: Path, layout: Layout, tokenizer: Path) -> None:
    dirs = layout.dataset("humaneval")
    files = mirror_files(mirror, "humaneval.test")
    with pytest.raises(TokenizerMismatchError, match="required 000"):
        process_split("humaneval.test", files, dirs, tokenizer, expected_tokenizer_sha256="0" * 64)
    with artifact_lock(dirs.root / ".locks" / "test"), pytest.raises(ArtifactLockedError):
        process_split("humaneval.test", files, dirs, tokenizer)


def test_records_are_valid_models(mirror: Path, layout: Layout, tokenizer: Path) -> None:
    dirs = layout.dataset("codecontests")
    process_split("codecontests.valid", mirror_files(mirror, "codecontests.valid"), dirs, tokenizer)
    for line in dirs.jsonl("valid").read_bytes().splitlines():
        CodeContestsRecord.model_validate_json(line)


@pytest.mark.parametrize("name", ["", "two\nlines"])
def test_a_name_the_trainer_cannot_recover_is_an_error(
    tmp_path: Path, layout: Layout, tokenizer: Path, name: str
) -> None:
    rows = [codecontests_row("fine", "d"), codecontests_row(name, "d")]
    shard = write_codecontests_parquet(tmp_path / "test-00000-of-00001.parquet", rows)
    with pytest.raises(DataError, match=r"row 1: column 'name'.*not recoverable"):
        process_split("codecontests.test", [shard], layout.dataset("codecontests"), tokenizer)


def _partition_files(dirs: DatasetDirs, split: str) -> dict[str, object]:
    """JSONL and index bytes and the stats (less their time stamp); None for an absent file."""
    jsonl, index, stats = dirs.jsonl(split), dirs.problem_index(split), dirs.stats_file(split)
    files: dict[str, object] = {
        p.name: p.read_bytes() if p.exists() else None for p in (jsonl, index)
    }
    files[stats.name] = None
    if stats.exists():
        files[stats.name] = {**json.loads(stats.read_bytes()), "generated_at": None}
    return files


@pytest.mark.parametrize("kind", ["sigkill", "enospc"])
def test_failure_at_every_publish_step_leaves_previous_or_refused(
    kind: str, mirror: Path, tmp_path: Path, tokenizer: Path
) -> None:
    """A kill or full disk at the N-th fsync/replace/unlink of a split over a previous version
    leaves the previous version (before the run deletes it: one version on disk), the new one,
    or a set whose stats file (the seal, renamed last and retracted first) is gone, which
    ``counts_match_stats`` refuses; a rerun recovers."""
    key, split = "codecontests.test", "test"
    files = mirror_files(mirror, key)
    part = Partition.parse(key)

    def run(dirs: DatasetDirs) -> None:
        process_split(key, files, dirs, tokenizer)

    def fresh(name: str) -> DatasetDirs:
        dirs = Layout(tmp_path / name).dataset("codecontests")
        process_split(key, files, dirs, tokenizer, max_tokens=100)  # the previous version
        return dirs

    previous = _partition_files(fresh("previous"), split)
    reference = fresh("reference")
    run(reference)
    new = _partition_files(reference, split)
    assert new != previous
    counted = fresh("count")
    total = count_steps(lambda: run(counted))
    outcomes: list[str] = []
    for n in range(1, total + 1):
        dirs = fresh(f"{kind}-{n}")
        with pytest.MonkeyPatch.context() as patch:
            fail_at(patch, n, kind)
            with contextlib.suppress(Killed, OSError):  # the last steps are cleanup: no raise
                run(dirs)
        state = _partition_files(dirs, split)
        sealed = guarded(partial(counts_match_stats, dirs, part)).passed
        indexed = guarded(partial(index_matches_records, dirs, part)).passed
        if kind == "enospc":
            assert not [p for p in dirs.root.rglob("*") if ".tmp-" in p.name], f"step {n}"
        if state in (previous, new):
            assert sealed and indexed, f"step {n}: a complete version passes"
            outcomes.append("previous" if state == previous else "new")
            continue
        assert state[dirs.stats_file(split).name] is None, f"step {n}: unsealed"
        assert not sealed, f"step {n}: counts_match_stats refuses a set without its stats"
        outcomes.append("refused")
        run(dirs)
        assert _partition_files(dirs, split) == new, f"step {n}: the rerun recovers"
    assert outcomes[0] == "previous" and "refused" in outcomes and outcomes[-1] == "new"


def test_shards_are_hashed_in_the_read_and_a_mismatch_stops_before_publishing(
    mirror: Path, layout: Layout, tokenizer: Path
) -> None:
    """Issue 18: processing trusted raw/; it now hashes each shard in the read that parses it,
    records the hashes in the stats and stops on one that differs from the record."""
    files = mirror_files(mirror, "codecontests.train")
    assert len(files) > 1
    truth = {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    dirs = layout.dataset("codecontests")
    report = process_split(
        "codecontests.train", files, dirs, tokenizer, max_tokens=512, expected_sha256=truth
    )
    assert report.stats.input_sha256 == {f.name: sha for f, sha in truth.items()}
    assert SplitStats.model_validate_json(dirs.stats_file("train").read_bytes()) == report.stats

    wrong = {**truth, files[-1]: "0" * 64}
    with pytest.raises(ShardMismatchError) as caught:
        process_split(
            "codecontests.train", files, dirs, tokenizer, max_tokens=512, expected_sha256=wrong
        )
    assert str(caught.value).startswith(f"{files[-1]}: SHA256 {truth[files[-1]]} != SOURCE.json")
    assert caught.value.file == str(files[-1]) and caught.value.found == truth[files[-1]]
    assert not dirs.stats_file("train").exists()  # no split looks complete


def test_a_token_limit_that_keeps_nothing_is_an_error(
    mirror: Path, layout: Layout, tokenizer: Path
) -> None:
    dirs = layout.dataset("mbpp")
    with pytest.raises(NothingKeptError, match=r"^mbpp\.test: max_tokens 5 kept 0 of \d+ records"):
        process_split("mbpp.test", mirror_files(mirror, "mbpp.test"), dirs, tokenizer, max_tokens=5)
    assert not dirs.stats_file("test").exists()


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
