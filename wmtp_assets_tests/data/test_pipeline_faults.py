"""``process_split`` refusing and failing: bad input, a wrong tokenizer or a held lock, a shard
whose hash differs, a kill or full disk at any publish step; what is left and that a rerun
recovers."""

from __future__ import annotations

import contextlib
import hashlib
import json
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wmtp_assets.data import convert_codecontests
from wmtp_assets.data.partitions import Partition
from wmtp_assets.data.pipeline import DataError, NothingKeptError, process_split
from wmtp_assets.data.shard_read import ShardMismatchError
from wmtp_assets.data.stats import SplitStats
from wmtp_assets.data.upstream_schema import CODECONTESTS_SCHEMA, UpstreamSchemaError
from wmtp_assets.demo.dataset_mirror import (
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


def _all_files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != ".lock"
    )


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


@pytest.mark.parametrize("name", ["", "two\nlines"])
def test_a_name_the_trainer_cannot_recover_is_an_error(
    tmp_path: Path, layout: Layout, tokenizer: Path, name: str
) -> None:
    rows = [codecontests_row("fine", "d"), codecontests_row(name, "d")]
    shard = write_codecontests_parquet(tmp_path / "test-00000-of-00001.parquet", rows)
    with pytest.raises(DataError, match=r"row 1: column 'name'.*not recoverable"):
        process_split("codecontests.test", [shard], layout.dataset("codecontests"), tokenizer)


def test_wrong_tokenizer_and_held_lock(mirror: Path, layout: Layout, tokenizer: Path) -> None:
    dirs = layout.dataset("humaneval")
    files = mirror_files(mirror, "humaneval.test")
    with pytest.raises(TokenizerMismatchError, match="required 000"):
        process_split("humaneval.test", files, dirs, tokenizer, expected_tokenizer_sha256="0" * 64)
    with artifact_lock(dirs.root / ".locks" / "test"), pytest.raises(ArtifactLockedError):
        process_split("humaneval.test", files, dirs, tokenizer)


def test_a_token_limit_that_keeps_nothing_is_an_error(
    mirror: Path, layout: Layout, tokenizer: Path
) -> None:
    dirs = layout.dataset("mbpp")
    with pytest.raises(NothingKeptError, match=r"^mbpp\.test: max_tokens 5 kept 0 of \d+ records"):
        process_split("mbpp.test", mirror_files(mirror, "mbpp.test"), dirs, tokenizer, max_tokens=5)
    assert not dirs.stats_file("test").exists()


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
