"""Dagster's own ``dg`` CLI reads the project from ``[tool.dg]`` in pyproject.toml.

Run as a user runs them: the ``dg`` of this environment, from the project root, real exit codes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from wmtp_assets.demo.mirror import DemoMirror
from wmtp_assets.files.layout import Layout

ROOT = Path(__file__).parents[2]
DG = str(Path(sys.executable).with_name("dg"))
CONTRACT_KEYS = {  # ARCHITECTURE.md §2
    "models/meta_llama_mtp/raw",
    "models/meta_llama_mtp/tokenizer",
    "models/meta_llama_mtp/safetensors",
    "models/ref_sheared_llama_2_7b/raw",
    "models/ref_sheared_llama_2_7b/safetensors",
    "models/starling_rm_7b/raw",
    "models/starling_rm_7b/safetensors",
    "models/micro_mtp",
    "models/micro_ref",
    "datasets/raw",
    "datasets/processed",
    "datasets/stats",
    "datasets/small",
    "datasets/problem_index",
}


def _dg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DG, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _env(tmp_path: Path, mirror: DemoMirror) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "WMTP_STORAGE_ROOT": str(tmp_path / "storage"),
        "WMTP_MIRROR": str(mirror.root),
        "WMTP_TOKENIZER_SHA256": mirror.tokenizer_sha256,
        "WMTP_DEVICE": "cpu",
    }


def test_dg_lists_and_checks_the_definitions(demo_mirror: DemoMirror, tmp_path: Path) -> None:
    env = _env(tmp_path, demo_mirror)
    listed = _dg(env, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = json.loads(listed.stdout)
    assert {asset["asset_key"] for asset in found["assets"]} >= CONTRACT_KEYS
    assert "revalidate" in {job["name"] for job in found["jobs"]}
    checked = _dg(env, "check", "defs")
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr


def test_dg_launch_materializes_an_asset_and_a_partition(
    demo_mirror: DemoMirror, tmp_path: Path
) -> None:
    env = _env(tmp_path, demo_mirror)
    tokenizer = _dg(
        env, "launch", "--assets", "models/meta_llama_mtp/raw,models/meta_llama_mtp/tokenizer"
    )
    assert tokenizer.returncode == 0, tokenizer.stderr[-3000:]
    partition = _dg(
        env, "launch", "--assets", "datasets/raw,datasets/processed", "--partition", "mbpp.test"
    )
    assert partition.returncode == 0, partition.stderr[-3000:]
    # wmtp_local's per-run choice: a dataset partition runs its steps in the run's process ...
    assert "Executing steps in process" in partition.stdout + partition.stderr
    dirs = Layout(tmp_path / "storage").dataset("mbpp")
    assert dirs.jsonl("test").is_file() and not dirs.jsonl("train").exists()
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        done = instance.get_materialized_partitions(dg.AssetKey(["datasets", "processed"]))
    assert done == {"mbpp.test"}

    # ... a run with a forward-pass check gets a process per step (forkserver, preloaded)
    micro = _dg(env, "launch", "--assets", "models/micro_mtp")
    assert micro.returncode == 0, micro.stderr[-3000:]
    assert "Executing steps using multiprocess executor" in micro.stdout + micro.stderr

    wrong = _dg(env, "launch", "--assets", "datasets/raw", "--partition", "mbpp.nope")
    assert wrong.returncode != 0
    assert "mbpp.nope" in wrong.stdout + wrong.stderr


def test_a_bad_setting_under_dagsters_own_clis_is_one_line(
    demo_mirror: DemoMirror, tmp_path: Path
) -> None:
    """Issue 18: ``WMTP_MAX_TOKENS=abc`` under ``dg`` and ``dagster`` (not only wmtp-assets) was
    a page of import traceback; it is one line naming the variable and what was expected."""
    env = {**_env(tmp_path, demo_mirror), "WMTP_MAX_TOKENS": "abc"}
    dagster = str(Path(sys.executable).with_name("dagster"))
    for command in (
        [DG, "launch", "--assets", "datasets/raw", "--partition", "mbpp.test"],
        [dagster, "asset", "list", "-m", "wmtp_assets.definitions"],
    ):
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        output = done.stdout + done.stderr
        assert done.returncode != 0, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        lines = [line for line in output.splitlines() if "WMTP_MAX_TOKENS" in line]
        assert len(lines) == 1 and "a whole number > 0" in lines[0] and "'abc'" in lines[0]
