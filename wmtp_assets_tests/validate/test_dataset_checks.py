"""The dataset checks that read the trainer's files: each passes on good data and fails on the
fault it exists for."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from wmtp_assets.data.eval_files import write_eval_files
from wmtp_assets.data.partitions import Partition
from wmtp_assets.data.pipeline import process_split
from wmtp_assets.demo.dataset_mirror import build_dataset_mirror
from wmtp_assets.demo.tokenizer import LLAMA2_TOKENIZER
from wmtp_assets.files.layout import DatasetDirs, Layout
from wmtp_assets.files.trainer_view import link_dataset
from wmtp_assets.validate import dataset_checks as dc
from wmtp_assets.validate import eval_checks as ec
from wmtp_assets.validate import split_checks as sc

KEYS = ["codecontests.train", "codecontests.test", "mbpp.test", "humaneval.test"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    mirror = tmp_path_factory.mktemp("mirror")
    build_dataset_mirror(mirror)
    layout = Layout(tmp_path_factory.mktemp("built") / "storage")
    for key in KEYS:
        part = Partition.parse(key)
        files = part.files_in(mirror / "datasets" / part.spec.repo_id)
        dirs = layout.dataset(part.dataset)
        for file in files:  # the checks read upstream from raw/, as stored by the raw asset
            (dirs.raw / file.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(file, dirs.raw / file.parent.name / file.name)
        process_split(part, files, dirs, LLAMA2_TOKENIZER, workers=1)
        write_eval_files(part, files, dirs)
        link_dataset(layout, part.dataset)
    return layout


@pytest.fixture
def layout(built: Layout, tmp_path: Path) -> Layout:
    root = tmp_path / "storage"
    shutil.copytree(built.root, root, symlinks=True)
    return Layout(root)


@pytest.mark.parametrize("key", KEYS)
def test_good_data_passes(layout: Layout, key: str) -> None:
    part = Partition.parse(key)
    dirs = layout.dataset(part.dataset)
    for outcome in (
        dc.index_matches_records(dirs, part),
        dc.token_limit_respected(dirs, part, LLAMA2_TOKENIZER, 2048),
        ec.eval_problems_cover_split(dirs, part),
        ec.eval_tests_cover_split(dirs, part),
        dc.trainer_path_of_dataset(layout, part),
    ):
        assert outcome.passed, outcome.summary
    if part.dataset != "codecontests":
        assert ec.eval_tests_cover_split(dirs, part).summary.startswith("not applicable")


def _rewrite(path: Path, edit: Callable[[list[bytes]], list[bytes]]) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(edit(lines)))


def test_misaligned_line_metadata_fails_the_index_check(layout: Layout) -> None:
    part = Partition.parse("codecontests.train")
    dirs = layout.dataset("codecontests")
    index = dirs.problem_index("train")
    text = index.read_text(encoding="utf-8")
    first = text.index('{"is_correct":true')
    index.write_text(text[:first] + text[first:].replace("true", "false", 1), encoding="utf-8")
    outcome = dc.index_matches_records(dirs, part)
    assert not outcome.passed and "metadata[0]" in outcome.summary


def test_a_wrong_output_length_fails_the_token_check(layout: Layout) -> None:
    part = Partition.parse("humaneval.test")
    dirs = layout.dataset("humaneval")
    index = dirs.problem_index("test")
    whole = json.loads(index.read_bytes())
    # every record is re-tokenized (164 < the sample size): shift one length by one
    text = index.read_text(encoding="utf-8")
    old = json.dumps(whole["problem_index_map"]["HumanEval/0"]["correct_token_lengths"])
    new = json.dumps([whole["problem_index_map"]["HumanEval/0"]["correct_token_lengths"][0] + 1])
    marker = '"HumanEval/0":'
    at = text.index(marker)
    end = text.index("\n", at)
    index.write_text(
        text[:at] + text[at:end].replace(old.replace(" ", ""), new) + text[end:], encoding="utf-8"
    )
    outcome = dc.token_limit_respected(dirs, part, LLAMA2_TOKENIZER, 2048)
    assert not outcome.passed and "the index says" in outcome.summary


def test_a_missing_eval_problem_fails(layout: Layout) -> None:
    part = Partition.parse("codecontests.test")
    dirs = layout.dataset("codecontests")
    _rewrite(dirs.eval_jsonl("test"), lambda lines: lines[:-1])
    outcome = ec.eval_problems_cover_split(dirs, part)
    assert not outcome.passed and "is missing" in outcome.summary


def test_a_repeated_eval_problem_fails(layout: Layout) -> None:
    part = Partition.parse("codecontests.test")
    dirs = layout.dataset("codecontests")
    _rewrite(dirs.eval_jsonl("test"), lambda lines: [lines[0], lines[0], *lines[2:]])
    outcome = ec.eval_problems_cover_split(dirs, part)
    assert not outcome.passed and "each problem once" in outcome.summary


def test_emptied_tests_fail(layout: Layout) -> None:
    part = Partition.parse("codecontests.train")
    dirs = layout.dataset("codecontests")
    path = dirs.tests_json("train")
    whole = json.loads(path.read_bytes())
    first = next(iter(whole))
    emptied = json.dumps({"input": [], "output": []}, separators=(",", ":"))
    original = json.dumps(whole[first]["private_tests"], ensure_ascii=False, separators=(",", ":"))
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(original, emptied, 1), encoding="utf-8")
    outcome = ec.eval_tests_cover_split(dirs, part)
    assert not outcome.passed and "upstream has" in outcome.summary


def test_a_training_problem_missing_from_the_tests_fails(layout: Layout) -> None:
    part = Partition.parse("codecontests.test")
    dirs = layout.dataset("codecontests")
    index = dirs.problem_index("test")
    problem_id = next(iter(json.loads(index.read_bytes())["problem_index_map"]))
    text = index.read_text(encoding="utf-8")
    index.write_text(text.replace(json.dumps(problem_id), '"renamed"'), encoding="utf-8")
    outcome = ec.eval_tests_cover_split(dirs, part)
    assert not outcome.passed and "'renamed' is not in" in outcome.summary


def test_a_removed_trainer_link_fails(layout: Layout) -> None:
    (layout.root / "datasets" / "mbpp").unlink()
    outcome = dc.trainer_path_of_dataset(layout, Partition.parse("mbpp.test"))
    assert not outcome.passed and "missing" in outcome.summary


def _statements(jsonl: Path) -> list[str]:
    """Re-derived from the documented format: blake2b-96 of each distinct instruction, sorted."""
    rows = [json.loads(line) for line in jsonl.read_bytes().splitlines()]
    return sorted(
        {hashlib.blake2b(r["instruction"].encode(), digest_size=12).hexdigest() for r in rows}
    )


@pytest.mark.parametrize("key", KEYS)
def test_statements_are_the_instructions_of_the_jsonl(layout: Layout, key: str) -> None:
    part = Partition.parse(key)
    dirs = layout.dataset(part.dataset)
    stored = json.loads(dirs.statements_file(part.split).read_bytes())
    jsonl = dirs.jsonl(part.split)
    assert stored["statements"] == _statements(jsonl)
    assert stored["jsonl_sha256"] == hashlib.sha256(jsonl.read_bytes()).hexdigest()
    assert sc.statements_match_split(dirs, part).passed
    assert sc.splits_disjoint(layout, part).passed


def _edit_statements(dirs: DatasetDirs, split: str, edit: Callable[[dict], None]) -> None:
    path = dirs.statements_file(split)
    document = json.loads(path.read_bytes())
    edit(document)
    path.write_text(json.dumps(document))


def test_a_statement_missing_from_the_digests_fails(layout: Layout) -> None:
    part = Partition.parse("codecontests.test")
    dirs = layout.dataset("codecontests")
    _edit_statements(dirs, "test", lambda d: d["statements"].pop())
    outcome = sc.statements_match_split(dirs, part)
    assert not outcome.passed and "1 statements of test.jsonl are not in it" in outcome.summary


def test_digests_of_other_bytes_fail_both_checks(layout: Layout) -> None:
    part = Partition.parse("codecontests.test")
    dirs = layout.dataset("codecontests")
    _edit_statements(dirs, "test", lambda d: d.update(jsonl_sha256="0" * 64))
    outcome = sc.statements_match_split(dirs, part)
    assert not outcome.passed and "describes a JSONL with SHA256 000" in outcome.summary
    refused = sc.splits_disjoint(layout, Partition.parse("codecontests.train"))
    assert not refused.passed and "test_statements.json" in refused.summary
    assert "reprocess codecontests.test" in refused.summary


def test_a_shared_statement_is_found_from_the_digests(layout: Layout) -> None:
    """A train record appended to test, with every hash and digest made consistent again (as an
    adversary would): only the digest comparison can see it, and it names both records."""
    dirs = layout.dataset("codecontests")
    leaked = dirs.jsonl("train").read_bytes().splitlines(keepends=True)[0]
    with dirs.jsonl("test").open("ab") as test:
        test.write(leaked)
    digest = hashlib.sha256(dirs.jsonl("test").read_bytes()).hexdigest()
    statements = _statements(dirs.jsonl("test"))
    _edit_statements(dirs, "test", lambda d: d.update(jsonl_sha256=digest, statements=statements))
    stats = json.loads(dirs.stats_file("test").read_bytes())
    stats["jsonl_sha256"] = digest
    dirs.stats_file("test").write_text(json.dumps(stats))
    part = Partition.parse("codecontests.test")
    assert sc.statements_match_split(dirs, part).passed
    outcome = sc.splits_disjoint(layout, part)
    task_id = json.loads(leaked)["task_id"]
    assert not outcome.passed
    assert f"codecontests.test {task_id} has the same problem statement as" in outcome.summary
    assert f"codecontests.train {task_id}" in outcome.summary


@pytest.mark.parametrize("first, second", [(0, 1), (3, 40), (0, -1)])
def test_a_repeated_task_id_is_named_with_both_lines(
    layout: Layout, first: int, second: int
) -> None:
    part = Partition.parse("humaneval.test")
    dirs = layout.dataset("humaneval")
    rows = [json.loads(line) for line in dirs.jsonl("test").read_bytes().splitlines()]
    second = second % len(rows)
    rows[second]["task_id"] = rows[first]["task_id"]
    dirs.jsonl("test").write_text("".join(json.dumps(r) + "\n" for r in rows))
    outcome = dc.task_ids_unique_and_labelled(dirs, part)
    assert not outcome.passed
    assert f"task_id {rows[first]['task_id']!r} on lines {first} and {second}" in outcome.summary
    assert dc.task_ids_unique_and_labelled(
        layout.dataset("mbpp"), Partition.parse("mbpp.test")
    ).passed
