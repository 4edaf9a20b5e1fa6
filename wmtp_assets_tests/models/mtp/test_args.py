"""ModelArgs and its two readers: strict types, consistent shapes, errors naming field and file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from wmtp_assets.models.mtp.args import ModelArgs, ModelArgsError

SEVEN_B = ModelArgs(
    dim=4096, n_layers=32, n_heads=32, n_kv_heads=32, vocab_size=32000, n_future_tokens=4
)
MICRO = ModelArgs(dim=512, n_layers=4, n_heads=8, vocab_size=32000, n_future_tokens=4)
BASE: dict[str, Any] = {
    "dim": 32,
    "n_layers": 3,
    "n_heads": 4,
    "vocab_size": 37,
    "multiple_of": 16,
    "n_future_tokens": 2,
    "max_seq_len": 32,
}
FFN_MULTIPLIER: dict[str, Any] = {
    "ffn_dim_multiplier": 1.3,
    "rope_theta": 500000.0,
    "norm_eps": 1e-6,
}


def test_ffn_hidden_dim_rounding() -> None:
    assert SEVEN_B.ffn_hidden_dim == 11008
    assert MICRO.ffn_hidden_dim == 1536
    assert ModelArgs(dim=8192, n_layers=1, n_heads=64, vocab_size=1).ffn_hidden_dim == 22016
    llama2_70b = ModelArgs(
        dim=8192, n_layers=1, n_heads=64, vocab_size=1, multiple_of=4096, ffn_dim_multiplier=1.3
    )
    assert llama2_70b.ffn_hidden_dim == 28672


META_PARAMS = {
    "dim": 4096,
    "n_layers": 32,
    "n_heads": 32,
    "n_kv_heads": 32,
    "vocab_size": 32000,
    "multiple_of": 256,
    "ffn_dim_multiplier": None,
    "norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "n_future_tokens": 4,
}


def _write(tmp_path: Path, data: dict[str, Any], name: str = "params.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_from_params_json_reads_meta_file_and_round_trips(tmp_path: Path) -> None:
    args = ModelArgs.from_params_json(_write(tmp_path, {**META_PARAMS, "max_batch_size": 32}))
    assert args == SEVEN_B
    assert args.n_trunk_layers == 29 and args.n_extra_heads == 3 and args.head_dim == 128
    again = ModelArgs.from_params_json(_write(tmp_path, dataclasses.asdict(args), "again.json"))
    assert again == args
    minimal = {"dim": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 10}
    read = ModelArgs.from_params_json(_write(tmp_path, minimal, "min.json"))
    assert read.n_future_tokens == 1 and read.kv_heads == 4 and read.max_seq_len == 2048


def test_from_params_json_accepts_plan_aliases(tmp_path: Path) -> None:
    data = {**META_PARAMS, "rms_norm_eps": 1e-6, "max_position_embeddings": 4096}
    del data["norm_eps"]
    args = ModelArgs.from_params_json(_write(tmp_path, data))
    assert args.norm_eps == 1e-6 and args.max_seq_len == 4096
    same = ModelArgs.from_params_json(_write(tmp_path, {**META_PARAMS, "rms_norm_eps": 1e-5}, "b"))
    assert same.norm_eps == 1e-5


def test_vocab_size_minus_one_takes_the_tokenizer_size(tmp_path: Path) -> None:
    path = _write(tmp_path, {**META_PARAMS, "vocab_size": -1})
    assert ModelArgs.from_params_json(path, vocab_size=32000).vocab_size == 32000
    assert ModelArgs.from_params_json(_write(tmp_path, META_PARAMS, "b"), vocab_size=32000)


PARAMS_ERRORS: dict[str, tuple[dict[str, Any], dict[str, Any], list[str]]] = {
    "unknown-key": ({"hidden_dim": 11008}, {}, ["hidden_dim", "unknown key"]),
    "missing-key": ({"drop": "n_heads"}, {}, ["n_heads", "missing"]),
    "missing-vocab": ({"drop": "vocab_size"}, {}, ["vocab_size", "missing"]),
    "string-int": ({"dim": "4096"}, {}, ["dim", "'4096'"]),
    "bool-int": ({"n_layers": True}, {}, ["n_layers", "True"]),
    "string-float": ({"norm_eps": "1e-5"}, {}, ["norm_eps"]),
    "contradictory-eps": ({"rms_norm_eps": 1e-6}, {}, ["norm_eps", "rms_norm_eps"]),
    "contradictory-len": (
        {"max_seq_len": 2048, "max_position_embeddings": 4096},
        {},
        ["max_seq_len", "max_position_embeddings"],
    ),
    "vocab-minus-one": ({"vocab_size": -1}, {}, ["vocab_size", "no vocab_size argument"]),
    "vocab-disagrees": ({}, {"vocab_size": 32001}, ["vocab_size", "32001"]),
    "negative": ({"n_heads": -4}, {}, ["n_heads", "greater than 0"]),
    "too-many-future": ({"n_future_tokens": 33}, {}, ["n_future_tokens", "n_layers"]),
    "indivisible-dim": ({"n_heads": 30, "n_kv_heads": 30}, {}, ["dim", "n_heads"]),
    "odd-head-dim": ({"dim": 4064}, {}, ["dim", "even"]),
    "kv-heads": ({"n_kv_heads": 5}, {}, ["n_kv_heads", "n_heads"]),
}


@pytest.mark.parametrize("case", sorted(PARAMS_ERRORS))
def test_from_params_json_errors_name_field_and_file(tmp_path: Path, case: str) -> None:
    changes, kwargs, needles = PARAMS_ERRORS[case]
    data = {**META_PARAMS, **changes}
    data.pop(data.pop("drop", None), None)
    path = _write(tmp_path, data)
    with pytest.raises(ModelArgsError) as info:
        ModelArgs.from_params_json(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_from_params_json_rejects_non_object(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    path.write_text("[1, 2]")
    with pytest.raises(ModelArgsError, match="JSON object"):
        ModelArgs.from_params_json(path)


def test_direct_construction_errors_name_fields() -> None:
    with pytest.raises(ModelArgsError) as info:
        ModelArgs(dim=0, n_layers=2, n_heads=4, vocab_size=1.5)  # type: ignore[arg-type]
    assert [field for field, _ in info.value.problems] == ["dim", "vocab_size"]
    assert "greater than 0, got 0" in str(info.value) and "integer, got 1.5" in str(info.value)
    with pytest.raises(TypeError, match="hidden"):
        ModelArgs(dim=8, n_layers=2, n_heads=4, vocab_size=1, hidden=3)  # type: ignore[call-arg]
    with pytest.raises(ModelArgsError, match="n_future_tokens"):
        ModelArgs(**{**BASE, "n_future_tokens": 4})
    with pytest.raises(dataclasses.FrozenInstanceError):
        MICRO.dim = 8  # type: ignore[misc]


def test_hf_config_round_trips(tmp_path: Path) -> None:
    for args in (SEVEN_B, MICRO, ModelArgs(**{**BASE, **FFN_MULTIPLIER})):
        config = args.to_hf_config()
        assert config["intermediate_size"] == args.ffn_hidden_dim
        assert config["model_type"] == "wmtp_meta_mtp"
        assert ModelArgs.from_hf_config(config) == args
        assert ModelArgs.from_hf_config(_write(tmp_path, config, "config.json")) == args


def test_hf_config_tolerates_informational_keys() -> None:
    config = {
        **MICRO.to_hf_config(),
        "torch_dtype": "float16",
        "transformers_version": "4.45.0",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": None,
        "initializer_range": 0.02,
        "use_cache": True,
        "attention_bias": False,
        "mlp_bias": False,
        "rope_scaling": None,
        "attention_dropout": 0.0,
        "pretraining_tp": 1,
        "head_dim": 64,
    }
    assert ModelArgs.from_hf_config(config) == MICRO


HF_ERRORS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "intermediate": ({"intermediate_size": 1365}, ["intermediate_size", "1365", "1536"]),
    "head-dim": ({"head_dim": 128}, ["head_dim", "128", "64"]),
    "unknown": ({"num_experts": 8}, ["num_experts", "unknown key"]),
    "act": ({"hidden_act": "gelu"}, ["hidden_act", "gelu"]),
    "tied": ({"tie_word_embeddings": True}, ["tie_word_embeddings"]),
    "rope-scaling": ({"rope_scaling": {"type": "linear", "factor": 2.0}}, ["rope_scaling"]),
    "wrong-type": ({"hidden_size": "512"}, ["hidden_size", "'512'"]),
    "missing": ({"drop": "num_hidden_layers"}, ["num_hidden_layers", "missing"]),
}


@pytest.mark.parametrize("case", sorted(HF_ERRORS))
def test_hf_config_errors_name_field_and_file(tmp_path: Path, case: str) -> None:
    changes, needles = HF_ERRORS[case]
    data = {**MICRO.to_hf_config(), **changes}
    data.pop(data.pop("drop", None), None)
    path = _write(tmp_path, data, "config.json")
    with pytest.raises(ModelArgsError) as info:
        ModelArgs.from_hf_config(path)
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message
