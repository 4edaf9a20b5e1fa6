"""Upstream config vs checkpoint vs tokenizer: each contradiction named with file, field and both
values; only headers and the RoPE tensor are read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wmtp_assets.models.checkpoint_reader import LazyCheckpoint, open_checkpoint
from wmtp_assets.models.tokenizer_files import tokenizer_info
from wmtp_assets.models.upstream_consistency import (
    hf_llama_contradictions,
    meta_contradictions,
    rope_contradictions,
    rope_theta_implied,
)
from wmtp_assets_tests.models.checkpoint_fixtures import META_PARAMS, make_meta_raw, make_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.model")


@pytest.fixture(scope="module")
def meta_raw(tmp_path_factory: pytest.TempPathFactory, tokenizer: Path) -> Path:
    return make_meta_raw(tmp_path_factory.mktemp("raw"), tokenizer)


def _numpy_freqs(theta: float, head_dim: int) -> torch.Tensor:
    """Meta's formula evaluated by numpy in float64, the reference for the torch code."""
    return torch.from_numpy(1.0 / np.power(theta, np.arange(0, head_dim, 2) / head_dim))


@pytest.mark.parametrize("theta", [10000.0, 500000.0, 1e6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rope_theta_is_recovered_from_stored_frequencies(theta: float, dtype: torch.dtype) -> None:
    freqs = _numpy_freqs(theta, 128).to(dtype)
    assert rope_theta_implied(freqs) == pytest.approx(theta, rel=0.05)
    assert rope_contradictions(freqs, theta, 128, "params.json", "rope.freqs") == []
    other = 10000.0 if theta != 10000.0 else 500000.0
    (found,) = rope_contradictions(freqs, other, 128, "params.json", "rope.freqs")
    assert (found.field, found.stated) == ("rope_theta", other)
    assert found.implied == pytest.approx(theta, rel=0.05)


def test_a_consistent_meta_raw_has_no_contradiction(meta_raw: Path, tokenizer: Path) -> None:
    vocab = tokenizer_info(tokenizer).vocab_size
    with open_checkpoint(meta_raw / "7B_1T_4/consolidated.pth") as checkpoint:
        assert meta_contradictions(meta_raw / "7B_1T_4/params.json", checkpoint, vocab) == []


def test_only_the_rope_tensor_is_read(
    meta_raw: Path, tokenizer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streaming: a 27 GB checkpoint costs its pickle and one small tensor, not its weights."""
    read: list[str] = []
    real = LazyCheckpoint.get
    monkeypatch.setattr(LazyCheckpoint, "get", lambda self, n: read.append(n) or real(self, n))
    vocab = tokenizer_info(tokenizer).vocab_size
    with open_checkpoint(meta_raw / "7B_1T_4/consolidated.pth") as checkpoint:
        meta_contradictions(meta_raw / "7B_1T_4/params.json", checkpoint, vocab)
    assert read == ["rope.freqs"]


@pytest.mark.parametrize(
    ("edit", "field", "stated", "implied"),
    [
        ({"rope_theta": 500000.0}, "rope_theta", 500000.0, 10000.0),
        ({"n_heads": 8, "n_kv_heads": 8}, "head_dim (dim / n_heads)", 8, 16),
        ({"dim": 128}, "dim", 128, 64),
        ({"n_layers": 6}, "n_layers", 6, 4),
        ({"n_future_tokens": 3}, "n_future_tokens", 3, 2),
        ({"vocab_size": 31000}, "vocab_size", 31000, None),  # None: the tokenizer's count
    ],
)
def test_each_meta_contradiction_names_file_field_and_values(
    meta_raw: Path,
    tokenizer: Path,
    tmp_path: Path,
    edit: dict,
    field: str,
    stated: object,
    implied: object,
) -> None:
    vocab = tokenizer_info(tokenizer).vocab_size
    params = tmp_path / "params.json"
    params.write_text(json.dumps({**META_PARAMS, **edit}))
    with open_checkpoint(meta_raw / "7B_1T_4/consolidated.pth") as checkpoint:
        found = meta_contradictions(params, checkpoint, vocab)
    mine = [c for c in found if c.field == field]
    assert mine, [c.message for c in found]
    assert mine[0].stated == stated
    assert mine[0].implied == pytest.approx(vocab if implied is None else implied, rel=1e-3)
    assert mine[0].message.startswith(f"{params}: {field} is {stated!r} but ")


def _hf_raw(root: Path, config: dict, theta: float = 10000.0) -> LazyCheckpoint:
    """A one-file HF checkpoint of 2 layers, hidden 32, 4 heads (head_dim 8), vocab 100."""
    shapes = {
        "model.embed_tokens.weight": (100, 32),
        "lm_head.weight": (100, 32),
        "model.norm.weight": (32,),
    }
    for i in range(2):
        shapes[f"model.layers.{i}.self_attn.q_proj.weight"] = (32, 32)
        shapes[f"model.layers.{i}.mlp.gate_proj.weight"] = (64, 32)
    state = {n: torch.zeros(s) for n, s in shapes.items()}
    state["model.layers.0.self_attn.rotary_emb.inv_freq"] = _numpy_freqs(theta, 8).float()
    root.mkdir()
    torch.save(state, root / "pytorch_model.bin")
    (root / "config.json").write_text(json.dumps(config))
    return open_checkpoint(root / "pytorch_model.bin")


HF_CONFIG = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 100,
}


@pytest.mark.parametrize(
    ("edit", "field", "stated", "implied"),
    [
        ({}, None, None, None),
        ({"rope_theta": 500000.0}, "rope_theta", 500000.0, 10000.0),
        ({"num_attention_heads": 8}, "head_dim (dim / n_heads)", 4, 8),
        ({"hidden_size": 64}, "hidden_size", 64, 32),
        ({"num_hidden_layers": 3}, "num_hidden_layers", 3, 2),
        ({"intermediate_size": 128}, "intermediate_size", 128, 64),
    ],
)
def test_each_hf_contradiction_names_file_field_and_values(
    tmp_path: Path, edit: dict, field: str | None, stated: object, implied: object
) -> None:
    with _hf_raw(tmp_path / "raw", {**HF_CONFIG, **edit}) as checkpoint:
        found = hf_llama_contradictions(tmp_path / "raw" / "config.json", checkpoint, 100)
    if field is None:
        assert found == []
        return
    mine = [c for c in found if c.field == field]
    assert mine, [c.message for c in found]
    assert (mine[0].stated, mine[0].file) == (stated, str(tmp_path / "raw" / "config.json"))
    assert mine[0].implied == pytest.approx(implied, rel=1e-3)


def test_hf_vocab_is_held_to_the_tokenizer(tmp_path: Path) -> None:
    with _hf_raw(tmp_path / "raw", HF_CONFIG) as checkpoint:
        (found,) = hf_llama_contradictions(tmp_path / "raw" / "config.json", checkpoint, 32000)
    assert (found.field, found.stated, found.implied) == ("vocab_size", 100, 32000)
    assert "tokenizer.model" in found.message
