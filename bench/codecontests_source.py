"""A CodeContests-shaped upstream split at real size (or a fraction of it), streamed to parquet
in the exact upstream schema without holding it in RAM, for ``bench/codecontests_scale.py``.

Field sizes follow what is known of the upstream data (REFERENCE §5, §9, §10): 13,328 train
problems in 39 shards; about 277 kept Python records per problem (3,691,981 in all); a Python
3/2 share of the solutions with C++ and Java beside them (dropped by the language filter); code
and descriptions ~1.4 KB median, lognormal, 1 % of solutions ~20 KB (over the token limit); the
test columns are most of the 7.5 GB, ~480 KB of test strings per problem (the train tests file
reaches ~6.5 GB), lognormal across problems, in public (2-3 small), private (a few) and generated
tests (up to ~100 larger ones). Text comes from the word and code pools of
``bench/codecontests_text.py`` (~3 characters per Llama-2 token, like real code). One row group
per 16 problems, written and dropped before the next, so memory is one row group whatever the
size.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bench.codecontests_text import WORDS, Pools
from wmtp_assets.data.upstream_schema import CODECONTESTS_SCHEMA
from wmtp_assets.demo.dataset_mirror import CPP, JAVA, PYTHON2, PYTHON3, codecontests_row

REAL_PROBLEMS = 13_328
REAL_SHARDS = 39
KEPT_PER_PROBLEM = 277
TESTS_BYTES_MEDIAN = 300_000
ROW_GROUP = 16


def _digits(rng: random.Random, size: int) -> str:
    pool = [str(rng.randint(0, 10**9)) for _ in range(size // 6 + 64)]
    return " ".join(pool)


class _TestPool:
    """One 8 MB string of numbers; a test is a slice of it (fast, deterministic)."""

    def __init__(self, rng: random.Random) -> None:
        self.text = _digits(rng, 8 << 20)

    def take(self, rng: random.Random, size: int) -> str:
        start = rng.randrange(0, len(self.text) - size - 1)
        return self.text[start : start + size] + "\n"


def _tests(rng: random.Random, pool: _TestPool) -> dict[str, list[tuple[str, str]]]:
    budget = int(rng.lognormvariate(math.log(TESTS_BYTES_MEDIAN), 0.9))
    count = max(1, min(100, budget // 2_000))
    each = max(8, budget // count)
    generated = [(pool.take(rng, each * 4 // 5), pool.take(rng, each // 5)) for _ in range(count)]
    public = [(pool.take(rng, 40), pool.take(rng, 10)) for _ in range(rng.randint(1, 3))]
    private = [(pool.take(rng, 400), pool.take(rng, 60)) for _ in range(rng.randint(1, 6))]
    return {"public": public, "private": private, "generated": generated}


def _problem(p: int, rng: random.Random, pools: Pools, tests: _TestPool) -> dict[str, Any]:
    kept = max(1, int(rng.lognormvariate(math.log(KEPT_PER_PROBLEM * 0.8), 0.7)))
    python = [
        (
            rng.choice((PYTHON3, PYTHON3, PYTHON2)),
            f"# {p}/{k}\n" + rng.choice(pools.python_long if rng.random() < 0.01 else pools.python),
        )
        for k in range(kept)
    ]
    other = [
        (rng.choice((CPP, JAVA)), f"// {p}/{k}\n" + rng.choice(pools.cpp)) for k in range(kept // 4)
    ]
    solutions = python + other
    rng.shuffle(solutions)
    split = int(len(solutions) * 0.475)
    sets = _tests(rng, tests)
    row = codecontests_row(
        f"{p}_{rng.choice('ABCDE')}. {rng.choice(WORDS).title()}",
        f"Problem {p}. " + rng.choice(pools.descriptions),
        public_tests=sets["public"],
        generated_tests=sets["generated"],
        solutions=solutions[:split],
        incorrect_solutions=solutions[split:],
        difficulty=rng.randint(0, 12),
        cf_rating=rng.choice((0, 800, 1200, 1600, 2000)),
    )
    row["private_tests"] = {
        "input": [i for i, _ in sets["private"]],
        "output": [o for _, o in sets["private"]],
    }
    return row


def write_split(folder: Path, split: str, problems: int, shards: int, seed: int = 0) -> list[Path]:
    """``problems`` problems as ``<split>-000NN-of-000MM.parquet`` shards in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    pools, rng = Pools(seed), random.Random(seed)
    tests = _TestPool(rng)
    per_shard = math.ceil(problems / shards)
    paths: list[Path] = []
    for s in range(shards):
        path = folder / f"{split}-{s:05d}-of-{shards:05d}.parquet"
        first, last = s * per_shard, min(problems, (s + 1) * per_shard)
        with pq.ParquetWriter(path, CODECONTESTS_SCHEMA) as writer:
            for start in range(first, last, ROW_GROUP):
                rows = [
                    _problem(p, rng, pools, tests)
                    for p in range(start, min(last, start + ROW_GROUP))
                ]
                writer.write_table(pa.Table.from_pylist(rows, schema=CODECONTESTS_SCHEMA))
        paths.append(path)
    return paths
