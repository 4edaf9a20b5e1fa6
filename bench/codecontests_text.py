"""CodeContests-shaped text: word and code pools, and a small split of problems built from them.

Deterministic for a seed, so benchmark inputs are reproducible byte for byte. Code blocks and
descriptions are ~1.4 KB median, lognormal (~3 characters per Llama-2 token, like real code);
1 % of Python solutions are ~20 KB, far over the token limit. ``bench/datasets.py`` measures on
``write_split``; ``bench/codecontests_source.py`` builds its real-size split from ``Pools``.
"""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path
from typing import Any

from wmtp_assets.demo.dataset_mirror import (
    CPP,
    JAVA,
    PYTHON2,
    PYTHON3,
    codecontests_row,
    write_codecontests_parquet,
)

PROBLEMS_PER_SHARD = 100
LANGUAGES = [(PYTHON3, 0.55), (PYTHON2, 0.2), (CPP, 0.18), (JAVA, 0.07)]
_WORD_TEXT = (
    "array integer string query tree graph edge vertex path cost minimum maximum sum number "
    "print output input test case line contains each given find count pair subsequence order "
    "operation value index element distinct modulo answer possible first second friends city "
    "road game player move turn Alice Bob coins bracket sequence segment permutation"
)
WORDS = _WORD_TEXT.split()


def _identifier(rng: random.Random) -> str:
    return "_".join(rng.choice(WORDS).lower() for _ in range(rng.randint(1, 2)))


def _python_block(rng: random.Random) -> str:
    a, b, c = _identifier(rng), _identifier(rng), _identifier(rng)
    n = rng.randint(2, 10**6)
    return rng.choice(
        [
            f"def {a}({b}, {c}):\n    {b} = sorted({b})\n    total = 0\n    for i in range(len({b})):\n"  # noqa: E501
            f"        if {b}[i] % {n} == {c}:\n            total += {b}[i]\n    return total\n\n",
            f"{a} = [int(x) for x in input().split()]\n{b} = {{}}\nfor v in {a}:\n"
            f"    {b}[v] = {b}.get(v, 0) + 1\nprint(max({b}.values()) if {b} else {n})\n",
            f"while {a} < {b}:\n    mid = ({a} + {b}) // 2\n    if check(mid, {c}):\n"
            f"        {b} = mid\n    else:\n        {a} = mid + 1\n",
            f"import sys\ninput = sys.stdin.readline\nMOD = {n}\n"
            f"dp = [0] * ({n % 1000} + 1)\ndp[0] = 1\nfor i in range(1, len(dp)):\n"
            f"    dp[i] = (dp[i - 1] * {rng.randint(2, 99)} + i) % MOD\n",
            f"for _ in range(int(input())):\n    {a}, {b} = map(int, input().split())\n"
            f"    print('YES' if ({a} ^ {b}) & {n} else 'NO')\n",
        ]
    )


def _cpp_block(rng: random.Random) -> str:
    a, b = _identifier(rng), _identifier(rng)
    return (
        f"long long {a}(vector<long long>& {b}) {{\n  long long s = 0;\n"
        f"  for (auto x : {b}) s = (s + x * {rng.randint(2, 999)}) % {rng.randint(10**8, 10**9)};\n"
        f"  return s;\n}}\n"
    )


def _code(rng: random.Random, block: Any, target: int) -> str:
    parts: list[str] = []
    while sum(map(len, parts)) < target:
        parts.append(block(rng))
    return "".join(parts)


def _description(rng: random.Random, target: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < target:
        words += [rng.choice(WORDS) for _ in range(rng.randint(6, 14))] + [
            ".\n" * rng.randint(0, 1)
        ]
    return " ".join(words) + "\n\nExample\n\nInput\n\n3\n1 2 3\n\nOutput\n\n6\n"


class Pools:
    """Pre-generated texts; rows sample from them so generation is fast and deterministic."""

    def __init__(self, seed: int = 0) -> None:
        rng = random.Random(seed)

        def length() -> int:
            return int(min(6000, max(200, rng.lognormvariate(math.log(1400), 0.45))))

        self.python = [_code(rng, _python_block, length()) for _ in range(3000)]
        self.python_long = [_code(rng, _python_block, 20_000) for _ in range(20)]
        self.cpp = [_code(rng, _cpp_block, length()) for _ in range(600)]
        self.descriptions = [_description(rng, length()) for _ in range(800)]


def _solution(rng: random.Random, pools: Pools, tag: str) -> tuple[int, str]:
    (language,) = rng.choices([lang for lang, _ in LANGUAGES], [w for _, w in LANGUAGES])
    if language in (CPP, JAVA):
        return language, f"// {tag}\n" + rng.choice(pools.cpp)
    source = pools.python_long if rng.random() < 0.01 else pools.python
    return language, f"# {tag}\n" + rng.choice(source)


def write_split(folder: Path, problems: int, per_problem: int, seed: int = 0) -> list[Path]:
    """Write ``problems`` CodeContests problems as shards of ``PROBLEMS_PER_SHARD``."""
    shutil.rmtree(folder, ignore_errors=True)
    pools, rng = Pools(), random.Random(seed)
    shards = math.ceil(problems / PROBLEMS_PER_SHARD)
    paths = []
    for s in range(shards):
        rows = []
        for p in range(s * PROBLEMS_PER_SHARD, min(problems, (s + 1) * PROBLEMS_PER_SHARD)):
            solutions = [_solution(rng, pools, f"{p}/{k}") for k in range(per_problem)]
            half = per_problem // 2
            rows.append(
                codecontests_row(
                    f"{p}_{rng.choice('ABCDE')}. {rng.choice(WORDS).title()}",
                    f"Problem {p}. " + rng.choice(pools.descriptions),
                    public_tests=[(f"{k}\n{k} {p}\n", f"{k + p}\n") for k in range(3)],
                    solutions=solutions[:half],
                    incorrect_solutions=solutions[half:],
                    difficulty=rng.randint(0, 12),
                )
            )
        path = folder / f"train-{s:05d}-of-{shards:05d}.parquet"
        paths.append(write_codecontests_parquet(path, rows, row_group_size=50))
    return paths
