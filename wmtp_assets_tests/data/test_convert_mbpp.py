from __future__ import annotations

import pytest

from wmtp_assets.data import convert_mbpp
from wmtp_assets.data.convert_base import BadKeyError


def test_mapping() -> None:
    row = {
        "task_id": 601,
        "text": "Write a function to add two numbers.",
        "code": "def add(a, b):\n    return a + b",
        "test_list": ["assert add(1, 2) == 3"],
        "test_setup_code": "import math",
        "challenge_test_list": ["assert add(0, 0) == 0"],
    }
    key = convert_mbpp.problem_keys([601])[0]
    assert key == "601"
    problem = convert_mbpp.convert(row, key)
    (candidate,) = problem.candidates
    assert candidate.is_correct
    assert candidate.record.model_dump() == {
        "instruction": (
            "Write a function to add two numbers.\n\nThe function should be named 'add'."
        ),
        "input": "",
        "output": "def add(a, b):\n    return a + b",
        "task_id": "601",
        "metadata": {
            "has_tests": True,
            "test_list": ["assert add(1, 2) == 3"],
            "test_setup_code": "import math",
            "challenge_test_list": ["assert add(0, 0) == 0"],
        },
    }
    assert problem.difficulty is None


def test_repeated_or_null_task_ids_raise() -> None:
    with pytest.raises(BadKeyError):
        convert_mbpp.problem_keys([1, 2, 1])
    with pytest.raises(BadKeyError):
        convert_mbpp.problem_keys([1, None])


@pytest.mark.parametrize(
    ("tests", "expected"),
    [
        ([], "Task."),
        (["assert  remove_Occ ('hello', 'l') == 'heo'", "assert other(1)"], "remove_Occ"),
        (["assert set(similar((3, 4), (5, 4))) == set((4,))"], "set"),  # what the rule gives
        (["assert math.isclose(area(2), 4)"], "Task."),  # `assert math.` is no `assert <name>(`
        (["res = f(1)\nassert res == 2"], "Task."),  # no `assert <name>(` at all
    ],
)
def test_instruction_names_the_function_as_the_trainer_does(
    tests: list[str], expected: str
) -> None:
    instruction = convert_mbpp.instruction_of("Task.", tests)
    if expected == "Task.":
        assert instruction == "Task."
    else:
        assert instruction == f"Task.\n\nThe function should be named '{expected}'."
