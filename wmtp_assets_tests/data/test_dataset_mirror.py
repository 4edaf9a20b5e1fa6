from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from wmtp_assets.data.upstream_schema import CODECONTESTS_SCHEMA, HUMANEVAL_SCHEMA, MBPP_SCHEMA


def test_paths_and_schemas_are_upstream(mirror: Path) -> None:
    datasets = mirror / "datasets"
    expected = {
        "deepmind/code_contests/data/train-00000-of-00002.parquet": CODECONTESTS_SCHEMA,
        "deepmind/code_contests/data/train-00001-of-00002.parquet": CODECONTESTS_SCHEMA,
        "deepmind/code_contests/data/valid-00000-of-00001.parquet": CODECONTESTS_SCHEMA,
        "deepmind/code_contests/data/test-00000-of-00001.parquet": CODECONTESTS_SCHEMA,
        **{
            f"google-research-datasets/mbpp/full/{split}-00000-of-00001.parquet": MBPP_SCHEMA
            for split in ("train", "validation", "test", "prompt")
        },
        "openai/openai_humaneval/openai_humaneval/test-00000-of-00001.parquet": HUMANEVAL_SCHEMA,
    }
    assert sorted(str(p.relative_to(datasets)) for p in datasets.rglob("*.parquet")) == sorted(
        expected
    )
    for path, schema in expected.items():
        assert pq.read_schema(datasets / path).remove_metadata() == schema


def test_codecontests_cases_are_present(mirror: Path) -> None:
    data = mirror / "datasets/deepmind/code_contests/data"
    rows = [
        row
        for shard in sorted(data.glob("train-*.parquet"))
        for row in pq.read_table(shard).to_pylist()
    ]
    solutions = [
        (lang, code)
        for row in rows
        for column in ("solutions", "incorrect_solutions")
        for lang, code in zip(row[column]["language"], row[column]["solution"], strict=True)
    ]
    assert {lang for lang, _ in solutions} == {1, 2, 3, 4}
    assert any(not code.strip() for _, code in solutions)
    assert max(len(code) for _, code in solutions) > 10_000
    names = [(row["name"], row["source"]) for row in rows]
    repeated = [n for n, _ in names if [m for m, _ in names].count(n) > 1]
    assert repeated and len({s for n, s in names if n == repeated[0]}) == 2
