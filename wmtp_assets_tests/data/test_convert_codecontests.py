from __future__ import annotations

from typing import Any, cast

import pytest

from wmtp_assets.data import convert_codecontests as cc
from wmtp_assets.data.convert_base import BadKeyError
from wmtp_assets.data.records import CodeContestsRecord
from wmtp_assets.demo.dataset_mirror import codecontests_row


def _row() -> dict[str, Any]:
    return codecontests_row(
        "1000_A. Sum",
        "Print a+b.",
        public_tests=[("1 2\n", "3\n"), ("4 5", "9"), ("0 0\n", "0\n")],
        solutions=[
            (3, "print(sum(map(int,input().split())))"),
            (2, "int main(){}"),
            (1, "print 3"),
        ],
        incorrect_solutions=[(4, "class Main{}"), (3, "print(0)")],
        source=2,
        difficulty=7,
        cf_rating=800,
    )


def test_one_record_per_python_solution() -> None:
    problem = cc.convert(_row(), "1000_A. Sum#2")
    assert problem.language_drops == 2
    records = [cast(CodeContestsRecord, c.record) for c in problem.candidates]
    assert all(isinstance(r, CodeContestsRecord) for r in records)
    assert [r.task_id for r in records] == [
        "1000_A. Sum#2_correct_0",
        "1000_A. Sum#2_correct_2",
        "1000_A. Sum#2_incorrect_1",
    ]
    assert [
        (r.is_correct, c.is_correct) for r, c in zip(records, problem.candidates, strict=True)
    ] == [
        (True, True),
        (True, True),
        (False, False),
    ]
    first = records[0]
    assert first.instruction == "Print a+b." == problem.instruction
    assert first.output == "print(sum(map(int,input().split())))"
    assert first.metadata.model_dump() == {
        "has_tests": True,
        "source": 2,
        "difficulty": 7,
        "language": "python3",
        "name": "1000_A. Sum",
        "problem_key": "1000_A. Sum#2",
        "cf_rating": 800,
    }
    assert records[1].metadata.language == "python2"
    assert problem.difficulty == 7


def test_input_is_empty_as_in_the_trainers_rows_and_eval_prompts() -> None:
    problem = cc.convert(_row(), "k")
    assert problem.input == ""
    assert all(c.record.input == "" for c in problem.candidates)
    assert problem.candidates[0].record.metadata.has_tests is True


def test_no_public_tests() -> None:
    row = _row() | {"public_tests": {"input": [], "output": []}}
    problem = cc.convert(row, "k")
    assert problem.input == ""
    assert problem.candidates[0].record.metadata.has_tests is False


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("solutions", {"language": [3, 3], "solution": ["x"]}),
        ("public_tests", {"input": ["1"], "output": []}),
    ],
)
def test_unpaired_lists_raise(column: str, value: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        cc.convert(_row() | {column: value}, "k")


def test_nulls_read_as_empty() -> None:
    row = _row() | {"description": None, "incorrect_solutions": None, "cf_rating": None}
    problem = cc.convert(row, "k")
    assert problem.instruction == ""
    assert [c.is_correct for c in problem.candidates] == [True, True]
    assert problem.candidates[0].record.metadata.model_dump()["cf_rating"] == 0


def test_keys_follow_row_order() -> None:
    assert cc.problem_keys(["a", "b", "a", "a#2"]) == ["a", "b", "a#2", "a#2#2"]


def test_a_null_name_gives_no_usable_key() -> None:
    with pytest.raises(BadKeyError, match="problem name ''") as info:
        cc.problem_keys(["a", "b", "a", None])
    assert info.value.row == 3
