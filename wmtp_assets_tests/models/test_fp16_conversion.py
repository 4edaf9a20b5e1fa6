"""The shared conversion path: streaming the cast to a staged file, and the up-to-date decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.checkpoint_reader import open_checkpoint
from wmtp_assets.models.convert_meta import convert_meta_mtp
from wmtp_assets.models.fp16_cast import Float16RangeError
from wmtp_assets.models.fp16_conversion import stage_float16_weights
from wmtp_assets_tests.models.checkpoint_fixtures import (
    coreutils_accepts,
    make_meta_raw,
    make_tokenizer,
    recorded_provenance,
)

REPO = "models/facebook/multi-token-prediction"


def test_stage_float16_weights_matches_reference(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    state = {
        "b.weight": torch.randn(16, 8, generator=generator),
        "a.weight": torch.randn(8, generator=generator).to(torch.bfloat16),
        "c.weight": torch.tensor([1e-9, 1.0]),
    }
    torch.save(state, tmp_path / "ckpt.pth")
    messages: list[str] = []
    dest = tmp_path / "out" / "model.safetensors"
    weights = stage_float16_weights(
        open_checkpoint(tmp_path / "ckpt.pth"),
        sorted(state),
        dest,
        {"format": "pt"},
        progress=messages.append,
    )
    reference = tmp_path / "ref.safetensors"
    save_file({k: v.half() for k, v in state.items()}, reference, metadata={"format": "pt"})
    assert weights.staged.path.read_bytes() == reference.read_bytes()
    assert not dest.exists(), "staged, not published"
    assert weights.cast.flushed_to_zero == 1 and weights.cast.n_params == 16 * 8 + 8 + 2
    assert len(messages) == 3 and messages[-1].startswith("tensor 3/3")
    assert set(load_file(weights.staged.path)) == set(state)


def test_stage_float16_weights_failure_leaves_nothing(tmp_path: Path) -> None:
    state = {"a": torch.ones(4), "b": torch.tensor([1.0, float("nan")])}
    torch.save(state, tmp_path / "ckpt.pth")
    out = tmp_path / "out"
    with pytest.raises(Float16RangeError, match=r"ckpt.pth: tensor 'b'"):
        stage_float16_weights(
            open_checkpoint(tmp_path / "ckpt.pth"), ["a", "b"], out / "m.safetensors", {}
        )
    assert list(out.iterdir()) == []


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    return make_meta_raw(root, make_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.model"))


def _mtimes(dirs: ModelDirs) -> dict[str, int]:
    files = (p for p in dirs.root.rglob("*") if p.is_file() and p.name != ".lock")
    return {str(p): p.stat().st_mtime_ns for p in files}


def test_up_to_date_only_for_same_raw_hashes_and_code_version(raw: Path, tmp_path: Path) -> None:
    dirs = ModelDirs(tmp_path / "out")
    provenance = recorded_provenance(raw, REPO)
    first = convert_meta_mtp(raw, dirs, provenance, None, "v1", reuse_current=True)
    assert first.status == "converted" and first.report is not None
    before = _mtimes(dirs)
    again = convert_meta_mtp(raw, dirs, provenance, None, "v1", reuse_current=True)
    assert again.status == "up to date (not rewritten)" and again.report is None
    assert again.metadata == first.metadata and _mtimes(dirs) == before
    forced = convert_meta_mtp(raw, dirs, provenance, None, "v1")
    assert forced.status == "converted"

    other = make_meta_raw(tmp_path / "other", raw / "tokenizer.model", seed=5)
    changed = recorded_provenance(other, REPO)
    assert changed["files"] != provenance["files"]
    for source_raw, source, version in ((other, changed, "v1"), (raw, provenance, "v2")):
        outcome = convert_meta_mtp(source_raw, dirs, source, None, version, reuse_current=True)
        assert outcome.status == "converted", (source, version)

    (dirs.root / "configs" / "meta_adapter.yaml").write_text("truncated")  # size differs
    outcome = convert_meta_mtp(raw, dirs, provenance, None, "v2", reuse_current=True)
    assert outcome.status == "converted"
    assert json.loads(dirs.metadata.read_text())["source"]["files"] == provenance["files"]

    dirs.sha256sums.unlink()  # a publish that stopped before its seal: rebuilt, not reused
    outcome = convert_meta_mtp(raw, dirs, provenance, None, "v2", reuse_current=True)
    assert outcome.status == "converted" and coreutils_accepts(dirs)


def test_a_flipped_byte_of_the_same_size_is_rebuilt_not_current(raw: Path, tmp_path: Path) -> None:
    """Issue 18 (5): "current" is decided from the stored bytes, not from the record."""
    dirs = ModelDirs(tmp_path / "out")
    provenance = recorded_provenance(raw, REPO)
    convert_meta_mtp(raw, dirs, provenance, None, "v1", reuse_current=True)
    good = dirs.weights.read_bytes()
    flipped = bytearray(good)
    flipped[-3] ^= 0x01
    dirs.weights.write_bytes(bytes(flipped))
    said: list[str] = []
    outcome = convert_meta_mtp(raw, dirs, provenance, None, "v1", said.append, reuse_current=True)
    assert outcome.status == "converted"
    assert dirs.weights.read_bytes() == good and coreutils_accepts(dirs)
    assert any(str(dirs.weights) in line and "SHA256" in line for line in said), said
