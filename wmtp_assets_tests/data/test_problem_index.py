from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from wmtp_assets.data.problem_index import (
    IndexBuilder,
    IndexHeader,
    IndexStats,
    LineFields,
    ProblemIndex,
    iter_entries,
    iter_line_metadata,
    problem_id_of,
    read_header,
)
from wmtp_assets.data.records import CodeContestsRecord, HumanEvalRecord

LABELLED = LineFields(is_correct=True, difficulty=True)


def _header(builder: IndexBuilder, records: int, fields: LineFields = LABELLED) -> IndexHeader:
    return IndexHeader(
        dataset="d",
        split="s",
        jsonl="s.jsonl",
        jsonl_sha256="0" * 64,
        records=records,
        source_file="datasets_v2/d/processed/s.jsonl",
        stats=builder.stats(fields),
    )


def test_written_file_is_one_json_document_and_streams_back(tmp_path: Path) -> None:
    first, second = IndexBuilder(), IndexBuilder()
    first.add("a", 7, True, 0, 100)
    first.add("a", 7, False, 1, 90)
    first.add("a", 7, True, 2, 95)
    first.add('b "quoted"', 1, True, 3, 80)
    second.add("é#2", 0, False, 0, 50)
    first.extend(second, 4)
    path = tmp_path / "s_metadata.json"
    header = _header(first, 5)
    with open(path, "wb") as fh:
        first.write(fh, header, LABELLED)
    whole = json.loads(path.read_bytes())  # what the trainer does
    assert list(whole["problem_index_map"]) == ["a", 'b "quoted"', "é#2"]
    assert whole["problem_index_map"]["a"] == {
        "difficulty": 7,
        "correct_indices": [0, 2],
        "incorrect_indices": [1],
        "correct_token_lengths": [100, 95],
        "incorrect_token_lengths": [90],
    }
    assert whole["metadata"] == [
        {"is_correct": True, "difficulty": 7, "problem_id": "a"},
        {"is_correct": False, "difficulty": 7, "problem_id": "a"},
        {"is_correct": True, "difficulty": 7, "problem_id": "a"},
        {"is_correct": True, "difficulty": 1, "problem_id": 'b "quoted"'},
        {"is_correct": False, "difficulty": 0, "problem_id": "é#2"},
    ]
    assert whole["stats"] == {
        "total": 5,
        "correct": 3,
        "incorrect": 2,
        "difficulty_dist": {"7": 3, "1": 1, "0": 1},
        "has_is_correct": True,
        "has_difficulty": True,
        "has_problem_id": True,
        "n_problems": 3,
        "n_valid_problems": 1,
        "total_possible_pairs": 2,
    }
    assert whole["source_file"] == "datasets_v2/d/processed/s.jsonl"
    model = ProblemIndex.model_validate(whole)
    assert dict(iter_entries(path)) == model.problem_index_map
    assert list(iter_line_metadata(path)) == whole["metadata"]
    assert read_header(path) == header


def test_unlabelled_dataset_metadata_has_only_problem_id() -> None:
    builder = IndexBuilder()
    builder.add("HumanEval/0", None, True, 0, 12)
    fields = LineFields.of(HumanEvalRecord)
    buffer = io.BytesIO()
    builder.write(buffer, _header(builder, 1, fields), fields)
    whole = json.loads(buffer.getvalue())
    assert whole["metadata"] == [{"problem_id": "HumanEval/0"}]
    assert whole["problem_index_map"]["HumanEval/0"]["difficulty"] is None
    assert IndexStats.model_validate(whole["stats"]).has_is_correct is False


def test_line_fields_follow_the_record_models() -> None:
    assert LineFields.of(CodeContestsRecord) == LABELLED
    assert LineFields.of(HumanEvalRecord) == LineFields(is_correct=False, difficulty=False)


def test_empty_index() -> None:
    buffer = io.BytesIO()
    builder = IndexBuilder()
    builder.write(buffer, _header(builder, 0), LABELLED)
    whole = json.loads(buffer.getvalue())
    assert whole["problem_index_map"] == {} and whole["metadata"] == []


def test_a_problem_split_in_two_places_is_refused() -> None:
    builder = IndexBuilder()
    builder.add("a", 1, True, 0, 1)
    builder.add("b", 1, True, 1, 1)
    with pytest.raises(ValueError, match="'a' indexed twice"):
        builder.add("a", 1, True, 2, 1)


def test_record_count_must_match() -> None:
    builder = IndexBuilder()
    builder.add("a", 1, True, 0, 1)
    with pytest.raises(ValueError, match="2 lines"):
        builder.write(io.BytesIO(), _header(builder, 2), LABELLED)


@pytest.mark.parametrize(
    ("task_id", "problem_id"),
    [
        ("palindromes#2_correct_0", "palindromes#2"),
        ("x_correct_1_incorrect_12", "x_correct_1"),
        ("mbpp_11", "mbpp_11"),
        ("HumanEval/3", "HumanEval/3"),
    ],
)
def test_problem_id_is_the_trainers_rule(task_id: str, problem_id: str) -> None:
    assert problem_id_of(task_id) == problem_id
