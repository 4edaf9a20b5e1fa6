"""Headless ``dagster asset materialize`` as a GPU node or cron job runs it: real subprocesses,
real exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from wmtp_assets.demo.mirror import DemoMirror
from wmtp_assets.files.layout import Layout

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def _materialize(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "wmtp_assets.definitions", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_headless_models_then_one_dataset_partition(
    demo_mirror: DemoMirror, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "WMTP_STORAGE_ROOT": str(tmp_path / "storage"),
        "WMTP_MIRROR": str(demo_mirror.root),
        "WMTP_TOKENIZER_SHA256": demo_mirror.tokenizer_sha256,
        "WMTP_DEVICE": "cpu",
    }
    models = _materialize(
        env, "--select", "models/meta_llama_mtp/raw,models/meta_llama_mtp/tokenizer"
    )
    assert models.returncode == 0, models.stderr[-3000:]
    partition = _materialize(env, "--select", "group:datasets", "--partition", "mbpp.test")
    assert partition.returncode == 0, partition.stderr[-3000:]
    dirs = Layout(tmp_path / "storage").dataset("mbpp")
    assert dirs.jsonl("test").is_file() and dirs.small_jsonl("test").is_file()
    assert not dirs.jsonl("train").exists()

    env["WMTP_TOKENIZER_SHA256"] = "0" * 64
    failing = _materialize(env, "--select", "models/meta_llama_mtp/tokenizer")
    assert failing.returncode != 0
    assert "WMTP_TOKENIZER_SHA256" in failing.stderr + failing.stdout

    env["WMTP_TOKENIZER_SHA256"] = demo_mirror.tokenizer_sha256
    for key in ("datasets/raw", "datasets/stats", "datasets/problem_index"):
        alone = _materialize(env, "--select", key, "--partition", "humaneval.test")
        assert alone.returncode == 0, alone.stderr[-3000:]
    humaneval = Layout(tmp_path / "storage").dataset("humaneval")
    published = [
        humaneval.jsonl("test"),
        humaneval.problem_index("test"),
        humaneval.stats_file("test"),
    ]
    assert all(p.is_file() for p in published), "a selected key publishes its whole partition"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        materialized = {
            key: instance.get_materialized_partitions(dg.AssetKey.from_user_string(key))
            for key in ("datasets/processed", "datasets/problem_index", "datasets/stats")
        }
    # One key selected alone still rewrites the step's other files, so each is recorded (with
    # its new seal) as materialized too (issue 18: no rewritten file keeps a stale seal).
    assert materialized == {
        "datasets/processed": {"mbpp.test", "humaneval.test"},
        "datasets/problem_index": {"mbpp.test", "humaneval.test"},
        "datasets/stats": {"mbpp.test", "humaneval.test"},
    }
