"""Expected shapes against the real modules, and the one diff both conversions and checks use."""

from __future__ import annotations

import pytest
import torch
import transformers

from wmtp_assets.models.hf_llama import llama_config
from wmtp_assets.models.mtp.args import ModelArgs
from wmtp_assets.models.shapes import (
    ShapeMismatchError,
    diff_shapes,
    hf_llama_shapes,
    meta_shapes,
    require_shapes,
)

SEVEN_B = ModelArgs(
    dim=4096, n_layers=32, n_heads=32, n_kv_heads=32, vocab_size=32000, n_future_tokens=4
)


def test_hf_llama_shapes_are_transformers_parameters() -> None:
    config = llama_config(
        hidden_size=32,
        intermediate_size=80,
        num_hidden_layers=2,
        num_attention_heads=4,
        vocab_size=50,
    )
    config["num_key_value_heads"] = 2
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**config))
    actual = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert hf_llama_shapes(config) == actual


def test_exact_shapes_pass_and_any_difference_is_named() -> None:
    expected = meta_shapes(SEVEN_B)
    require_shapes(expected, {k: list(v) for k, v in expected.items()}, "ckpt")
    assert not diff_shapes(expected, expected)
    with pytest.raises(ShapeMismatchError, match=r"ckpt: .*unexpected 1: rope\.freqs"):
        require_shapes(expected, {**expected, "rope.freqs": (64,)}, "ckpt")


def test_diff_orders_and_message_names_files() -> None:
    expected = {"b": (2,), "a": (3, 4), "c": (1,)}
    found = {"a": (4, 3), "z": (1,), "y": (2,), "c": (1,)}
    diff = diff_shapes(expected, found)
    assert diff.missing == ["b"] and diff.unexpected == ["y", "z"]
    assert diff.mis_shaped == [("a", (3, 4), (4, 3))]
    error = ShapeMismatchError("raw/", diff, "config.json", files={"a": "s1.bin", "z": "s2.bin"})
    assert str(error) == (
        "raw/: tensors do not match config.json; missing 1: b; unexpected 2: y, z (in s2.bin); "
        "mis-shaped 1: a (in s1.bin) is [4, 3], expected [3, 4]"
    )
