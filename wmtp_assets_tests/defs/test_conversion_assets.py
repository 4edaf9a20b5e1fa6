"""The conversion assets through Dagster: up to date means untouched; a rewrite is identical."""

from __future__ import annotations

import dagster as dg
import torch

from wmtp_assets.defs.models import (
    META_SAFETENSORS,
    SHEARED_SAFETENSORS,
    STARLING_SAFETENSORS,
    meta_llama_mtp_raw,
    meta_llama_mtp_tokenizer,
    meta_safetensors,
    sheared_raw,
    sheared_safetensors,
    starling_raw,
    starling_safetensors,
)
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.files.layout import Layout
from wmtp_assets.settings import Settings

ASSETS = [
    meta_llama_mtp_raw,
    meta_llama_mtp_tokenizer,
    meta_safetensors,
    sheared_raw,
    sheared_safetensors,
    starling_raw,
    starling_safetensors,
]
MODELS = ("meta_llama_mtp", "ref_sheared_llama_2_7b", "starling_rm_7b")
CONVERSIONS = [META_SAFETENSORS, SHEARED_SAFETENSORS, STARLING_SAFETENSORS]


def _run(settings: Settings, selection: list[dg.AssetKey] | None = None) -> dict[str, str]:
    result = dg.materialize(
        ASSETS,
        selection=selection,
        resources={"wmtp": WmtpResource.from_settings(settings)},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return {
        e.materialization.asset_key.to_user_string(): e.materialization.metadata["status"].value
        for e in result.get_asset_materialization_events()
        if "status" in e.materialization.metadata
    }


def test_rematerializing_unchanged_inputs_leaves_the_weights_untouched(
    demo_settings: Settings,
) -> None:
    statuses = _run(demo_settings)
    assert set(statuses.values()) == {"converted"}
    layout = Layout(demo_settings.storage_root)
    weights = [layout.model(m).weights for m in MODELS]
    before = [(w.stat().st_ino, w.stat().st_mtime_ns, sha256_file(w)) for w in weights]

    statuses = _run(demo_settings, CONVERSIONS)
    assert set(statuses.values()) == {"up to date (not rewritten)"}
    assert [(w.stat().st_ino, w.stat().st_mtime_ns, sha256_file(w)) for w in weights] == before

    for model in MODELS:
        layout.model(model).metadata.unlink()
    statuses = _run(demo_settings, CONVERSIONS)
    assert set(statuses.values()) == {"converted"}
    after = [(w.stat().st_ino, sha256_file(w)) for w in weights]
    assert [a[1] for a in after] == [b[2] for b in before]
    assert [a[0] for a in after] != [b[0] for b in before]


def test_changed_raw_bytes_force_a_conversion(demo_settings: Settings) -> None:
    _run(demo_settings)
    raw = Layout(demo_settings.storage_root).model("meta_llama_mtp").raw
    record = raw / "SOURCE.json"
    text = record.read_text()
    checkpoint = raw / "7B_1T_4" / "consolidated.pth"
    old_sha = sha256_file(checkpoint)
    state = torch.load(checkpoint, weights_only=True)
    state["norm.weight"] = state["norm.weight"] * 2  # a new upstream snapshot, recorded as such
    torch.save(state, checkpoint)
    record.write_text(text.replace(old_sha, sha256_file(checkpoint)))
    statuses = _run(demo_settings, [META_SAFETENSORS])
    assert statuses == {"models/meta_llama_mtp/safetensors": "converted"}
