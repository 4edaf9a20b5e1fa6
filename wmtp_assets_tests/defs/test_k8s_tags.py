"""``dagster-k8s/config`` tags reach exactly the heavy steps, and only under ``WMTP_K8S=1``.

The definitions are loaded in a fresh interpreter per case because ``WMTP_K8S`` is read when
they are built (module import): the test process's own import cannot show both states.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from wmtp_assets.defs.k8s import K8S_CONFIG_TAG, StepKind, k8s_op_tags

# Every step of the loaded repository -> its dagster-k8s/config tag (decoded) or None. A step is
# named by its asset key, or "<asset key>:<check name>" for an asset check.
DUMP_TAGS = f"""
import json
from wmtp_assets.definitions import defs

tags = {{}}
for assets_def in defs.get_repository_def().asset_graph.assets_defs:
    raw = assets_def.op.tags.get({K8S_CONFIG_TAG!r})
    value = json.loads(raw) if raw else None
    for key in assets_def.keys:
        tags[key.to_user_string()] = value
    for check in assets_def.check_keys:
        tags[check.asset_key.to_user_string() + ":" + check.name] = value
print(json.dumps(tags))
"""

GPU_CHECKED_MODELS = [
    "models/meta_llama_mtp/safetensors",
    "models/ref_sheared_llama_2_7b/safetensors",
    "models/starling_rm_7b/safetensors",
    "models/micro_mtp",
    "models/micro_ref",
]
EXPECTED_KINDS: dict[str, StepKind] = {
    "models/meta_llama_mtp/safetensors": "convert",
    "models/ref_sheared_llama_2_7b/safetensors": "convert",
    "models/starling_rm_7b/safetensors": "convert",
    "models/meta_llama_mtp/raw": "download",
    "models/ref_sheared_llama_2_7b/raw": "download",
    "models/starling_rm_7b/raw": "download",
    "datasets/raw": "download",
    **{f"{model}:forward_pass": "gpu_check" for model in GPU_CHECKED_MODELS},
}


def _step_tags(k8s: bool) -> dict[str, object]:
    env = {key: value for key, value in os.environ.items() if key != "WMTP_K8S"}
    if k8s:
        env["WMTP_K8S"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", DUMP_TAGS], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_heavy_steps_carry_k8s_pod_config_under_wmtp_k8s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tagged = {step: tag for step, tag in _step_tags(k8s=True).items() if tag is not None}
    monkeypatch.setenv("WMTP_K8S", "1")
    expected = {step: k8s_op_tags(kind)[K8S_CONFIG_TAG] for step, kind in EXPECTED_KINDS.items()}
    assert tagged == expected

    forward = tagged["models/meta_llama_mtp/safetensors:forward_pass"]
    assert forward["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    convert = tagged["models/meta_llama_mtp/safetensors"]
    assert "nvidia.com/gpu" not in convert["container_config"]["resources"]["limits"]


def test_no_k8s_tags_without_wmtp_k8s(monkeypatch: pytest.MonkeyPatch) -> None:
    assert all(tag is None for tag in _step_tags(k8s=False).values())
    monkeypatch.delenv("WMTP_K8S", raising=False)
    assert k8s_op_tags("gpu_check") == {}
