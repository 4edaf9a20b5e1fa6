"""Headless ``dagster asset materialize`` as a GPU node or cron job runs it: real subprocesses,
real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from wmtp_assets.demo.mirror import DemoMirror
from wmtp_assets.files.layout import Layout

DAGSTER = str(Path(sys.executable).with_name("dagster"))
# One process per run instead of one per step: the same code paths, a fraction of the imports.
IN_PROCESS = ["--config-json", json.dumps({"execution": {"config": {"in_process": {}}}})]


def _materialize(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "wmtp_assets.definitions", *IN_PROCESS, *args],
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
