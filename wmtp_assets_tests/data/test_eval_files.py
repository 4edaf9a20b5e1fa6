from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from wmtp_assets.data.eval_files import iter_tests, write_eval_files
from wmtp_assets.data.pipeline import process_split
from wmtp_assets.demo.dataset_mirror import PYTHON3, codecontests_row, write_codecontests_parquet
from wmtp_assets.files.layout import DatasetDirs, Layout
from wmtp_assets_tests.data.conftest import mirror_files, write_codecontests_with_bytes
from wmtp_assets_tests.files.fault_injection import Killed, count_steps, fail_at

TEST_SETS = ("public_tests", "private_tests", "generated_tests")


def _upstream(files: list[Path]) -> list[dict[str, Any]]:
    return [row for f in files for row in pq.read_table(f).to_pylist()]


@pytest.mark.parametrize("split", ["valid", "test"])
def test_eval_jsonl_and_tests_json_follow_upstream(
    mirror: Path, layout: Layout, tokenizer: Path, split: str
) -> None:
    files = mirror_files(mirror, f"codecontests.{split}")
    dirs = layout.dataset("codecontests")
    process_split(f"codecontests.{split}", files, dirs, tokenizer)
    report = write_eval_files(f"codecontests.{split}", files, dirs)
    rows = _upstream(files)
    problems = [json.loads(line) for line in dirs.eval_jsonl(split).read_bytes().splitlines()]
    tests = json.loads(dirs.tests_json(split).read_bytes())
    assert report.problems == len(rows) == len(problems) == len(tests)
    for problem, row in zip(problems, rows, strict=True):
        assert list(problem) == ["task_id", "instruction", "input", "metadata"]
        assert (problem["task_id"], problem["instruction"], problem["input"]) == (
            row["name"],
            row["description"],
            "",
        )
        assert problem["metadata"] == {
            "source": row["source"],
            "difficulty": row["difficulty"],
            "cf_rating": row["cf_rating"],
            "time_limit": row["time_limit"],
            "memory_limit_bytes": row["memory_limit_bytes"],
        } | {s: row[s] for s in TEST_SETS}
        assert tests[row["name"]] == {"task_name": row["name"]} | {s: row[s] for s in TEST_SETS}
    assert dict(iter_tests(dirs.tests_json(split))).keys() == tests.keys()
    assert report.with_tests["public_tests"] == sum(bool(r["public_tests"]["input"]) for r in rows)


def test_train_gets_tests_only_and_keys_follow_the_training_disambiguation(
    mirror: Path, layout: Layout
) -> None:
    files = mirror_files(mirror, "codecontests.train")
    dirs = layout.dataset("codecontests")
    report = write_eval_files("codecontests.train", files, dirs)
    assert report.eval_jsonl is None and not dirs.eval_jsonl("train").exists()
    tests = json.loads(dirs.tests_json("train").read_bytes())
    names = [r["name"] for r in _upstream(files)]
    assert names.count("palindromes") == 2
    assert [v["task_name"] for v in tests.values()] == names
    assert "palindromes#2" in tests and len(tests) == len(names)


@pytest.mark.parametrize("key", ["mbpp.train", "mbpp.validation", "mbpp.test", "humaneval.test"])
def test_other_datasets_get_no_evaluation_files(mirror: Path, layout: Layout, key: str) -> None:
    dataset = key.split(".")[0]
    report = write_eval_files(key, mirror_files(mirror, key), layout.dataset(dataset))
    assert (report.eval_jsonl, report.tests_json, report.problems) == (None, None, 0)
    assert not layout.root.exists()


def test_invalid_utf8_in_tests_is_replaced_not_dropped(tmp_path: Path, layout: Layout) -> None:
    row = codecontests_row("p", "d", public_tests=[("1\n", "1\n")], solutions=[(PYTHON3, "x")])
    row["private_tests"] = {"input": [b"\xff\n"], "output": [b"2\n"]}
    shard = write_codecontests_with_bytes(tmp_path / "test-00000-of-00001.parquet", [row])
    dirs = layout.dataset("codecontests")
    report = write_eval_files("codecontests.test", [shard], dirs)
    assert (report.problems, report.replaced_problems) == (1, 1)
    tests = json.loads(dirs.tests_json("test").read_bytes())
    assert tests["p"]["private_tests"] == {"input": ["\ufffd\n"], "output": ["2\n"]}


def test_an_empty_split_writes_empty_files(tmp_path: Path, layout: Layout) -> None:
    shard = write_codecontests_parquet(tmp_path / "valid-00000-of-00001.parquet", [])
    dirs = layout.dataset("codecontests")
    write_eval_files("codecontests.valid", [shard], dirs)
    assert json.loads(dirs.tests_json("valid").read_bytes()) == {}
    assert list(iter_tests(dirs.tests_json("valid"))) == []
    assert dirs.eval_jsonl("valid").read_bytes() == b""


def test_a_crash_leaves_no_stale_file_and_the_rerun_writes_both(
    mirror: Path, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous files are deleted before the new ones are written (the disk holds one
    version: the train tests file is ~6.5 GB), so a crash leaves them absent, never partial."""
    from wmtp_assets.data import eval_files

    files = mirror_files(mirror, "codecontests.test")
    dirs = layout.dataset("codecontests")
    write_eval_files("codecontests.test", files, dirs)
    before = dirs.tests_json("test").read_bytes(), dirs.eval_jsonl("test").read_bytes()
    real = eval_files._eval_problem

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(eval_files, "_eval_problem", crash)
    with pytest.raises(KeyboardInterrupt):
        write_eval_files("codecontests.test", files, dirs)
    assert not dirs.tests_json("test").exists() and not dirs.eval_jsonl("test").exists()
    assert not [p for p in dirs.root.rglob(".*tmp-*")]
    monkeypatch.setattr(eval_files, "_eval_problem", real)
    write_eval_files("codecontests.test", files, dirs)
    assert (dirs.tests_json("test").read_bytes(), dirs.eval_jsonl("test").read_bytes()) == before


@pytest.mark.parametrize("kind", ["sigkill", "enospc"])
@pytest.mark.parametrize("first", [True, False], ids=["first-publish", "republish"])
def test_failure_at_every_publish_step_leaves_each_file_whole(
    kind: str, first: bool, mirror: Path, tmp_path: Path
) -> None:
    """``eval_problems`` and ``eval_tests`` are two assets, one file each, and each file is
    checked in full against upstream, so no seal is needed: a kill or full disk at any step must
    leave each file as it was (absent or the previous complete version, until the run deletes
    it first to keep the disk it needs to one version), absent, or the new one, and never a
    partial file or a temporary in its place; a rerun writes both."""
    key, split = "codecontests.test", "test"
    files = mirror_files(mirror, key)
    older = write_codecontests_parquet(
        tmp_path / "older" / "test-00000-of-00001.parquet",
        [codecontests_row("older", "an older snapshot", public_tests=[("1", "1")])],
    )

    def fresh(name: str) -> DatasetDirs:
        dirs = Layout(tmp_path / name).dataset("codecontests")
        if not first:
            write_eval_files(key, [older], dirs)
        return dirs

    def state(dirs: DatasetDirs) -> tuple[bytes | None, bytes | None]:
        paths = dirs.eval_jsonl(split), dirs.tests_json(split)
        return tuple(p.read_bytes() if p.exists() else None for p in paths)  # type: ignore[return-value]

    before = state(fresh("previous"))
    reference = fresh("reference")
    write_eval_files(key, files, reference)
    after = state(reference)
    assert None not in after and before != after
    counted = fresh("count")
    total = count_steps(lambda: write_eval_files(key, files, counted))
    assert total >= 4
    for n in range(1, total + 1):
        dirs = fresh(f"{kind}-{n}")
        with pytest.MonkeyPatch.context() as patch:
            fail_at(patch, n, kind)
            with contextlib.suppress(Killed, OSError):  # the last steps are cleanup: no raise
                write_eval_files(key, files, dirs)
        for found, old, new in zip(state(dirs), before, after, strict=True):
            assert found in (old, None, new), f"step {n}: each file old, absent or new, whole"
        if kind == "enospc":
            assert not [p for p in dirs.root.rglob("*") if ".tmp-" in p.name], f"step {n}"
        write_eval_files(key, files, dirs)
        assert state(dirs) == after, f"step {n}: the rerun writes both"
        assert not [p for p in dirs.root.rglob("*") if ".tmp-" in p.name], f"step {n}: swept"
