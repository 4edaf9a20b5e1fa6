from __future__ import annotations

from wmtp_assets.data import convert_humaneval


def test_mapping() -> None:
    row = {
        "task_id": "HumanEval/7",
        "prompt": 'def f(x):\n    """Double x."""\n',
        "canonical_solution": "    return 2 * x\n",
        "test": "def check(candidate):\n    assert candidate(2) == 4\n",
        "entry_point": "f",
    }
    problem = convert_humaneval.convert(row, convert_humaneval.problem_keys(["HumanEval/7"])[0])
    (candidate,) = problem.candidates
    assert candidate.record.model_dump() == {
        "instruction": row["prompt"],
        "input": "",
        "output": row["canonical_solution"],
        "task_id": "HumanEval/7",
        "metadata": {"has_tests": True, "test": row["test"], "entry_point": "f"},
    }
