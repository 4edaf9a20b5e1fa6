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
    problem = convert_mbpp.convert(row, key)
    (candidate,) = problem.candidates
    assert candidate.is_correct
    assert candidate.record.model_dump() == {
        "instruction": "Write a function to add two numbers.",
        "input": "",
        "output": "def add(a, b):\n    return a + b",
        "task_id": "mbpp_601",
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
