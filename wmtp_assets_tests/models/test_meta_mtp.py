"""The MTP Transformer against an independent reference, its args, loading and device handling."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from wmtp_assets.models.meta_mtp import (
    ModelArgs,
    ModelArgsError,
    StateDictMismatchError,
    Transformer,
    TransformerBlock,
    check_state_dict,
    expected_state_dict_shapes,
    num_parameters,
    precompute_freqs_cis,
)
from wmtp_assets_tests.models.reference_llama import ReferenceConfig, reference_forward

BASE: dict[str, Any] = {
    "dim": 32,
    "n_layers": 3,
    "n_heads": 4,
    "vocab_size": 37,
    "multiple_of": 16,
    "n_future_tokens": 2,
    "max_seq_len": 32,
}
CONFIGS: dict[str, dict[str, Any]] = {
    "mtp2": {},
    "single-token": {"n_future_tokens": 1, "n_layers": 2},
    "empty-trunk": {"n_future_tokens": 3},
    "gqa": {"n_kv_heads": 2, "n_future_tokens": 3, "n_layers": 4},
    "mqa": {"n_kv_heads": 1},
    "ffn-multiplier": {"ffn_dim_multiplier": 1.3, "rope_theta": 500000.0, "norm_eps": 1e-6},
}
SEVEN_B = ModelArgs(
    dim=4096, n_layers=32, n_heads=32, n_kv_heads=32, vocab_size=32000, n_future_tokens=4
)
MICRO = ModelArgs(dim=512, n_layers=4, n_heads=8, vocab_size=32000, n_future_tokens=4)
STD = 0.1  # larger than the default so logits are O(1) and tolerances mean something


def _model(overrides: dict[str, Any] | None = None, seed: int = 0) -> Transformer:
    model = Transformer(ModelArgs(**{**BASE, **(overrides or {})}))
    model.init_weights(seed, std=STD)
    return model


def _reference(model: Transformer, tokens: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    args = model.args
    cfg = ReferenceConfig(
        n_layers=args.n_layers,
        n_heads=args.n_heads,
        n_kv_heads=args.kv_heads,
        n_future_tokens=args.n_future_tokens,
        norm_eps=args.norm_eps,
        rope_theta=args.rope_theta,
    )
    return reference_forward(model.state_dict(), cfg, tokens, **kwargs)


def _tokens(batch: int = 2, seqlen: int = 9, vocab: int = 37, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, seqlen), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_reference_in_float32(name: str) -> None:
    model = _model(CONFIGS[name])
    tokens = _tokens()
    logits = model(tokens)
    args = model.args
    assert logits.shape == (2, 9, args.n_future_tokens, args.vocab_size)
    assert logits.dtype == torch.float32
    assert logits.requires_grad  # no inference_mode/no_grad inside forward
    torch.testing.assert_close(logits, _reference(model, tokens), atol=1e-5, rtol=1e-5)


def test_layer_counts_follow_n_future_tokens() -> None:
    model = _model(CONFIGS["empty-trunk"])
    assert len(model.layers) == 1 and len(model.extra_heads) == 2
    model = _model(CONFIGS["single-token"])
    assert len(model.layers) == 2 and len(model.extra_heads) == 0


def test_heads_read_the_trunk_output_in_parallel() -> None:
    """Changing one extra head's weights changes only that head's logits."""
    model = _model(CONFIGS["gqa"])
    tokens = _tokens()
    before = model(tokens).detach()
    with torch.no_grad():
        model.extra_heads[0].feed_forward.w2.weight.mul_(3.0)
    after = model(tokens).detach()
    torch.testing.assert_close(after[:, :, [0, 2]], before[:, :, [0, 2]], atol=0, rtol=0)
    assert not torch.allclose(after[:, :, 1], before[:, :, 1])


def test_return_all_heads_false_is_head_zero() -> None:
    model = _model(CONFIGS["gqa"])
    tokens = _tokens()
    head0 = model(tokens, return_all_heads=False)
    assert head0.shape == (2, 9, 1, 37)
    torch.testing.assert_close(head0, model(tokens)[:, :, :1], atol=1e-6, rtol=1e-6)
    reference = _reference(model, tokens, return_all_heads=False)
    torch.testing.assert_close(head0, reference, atol=1e-5, rtol=1e-5)


def test_start_pos_offsets_rope_positions() -> None:
    model = _model(CONFIGS["gqa"])
    tokens = _tokens()
    shifted = model(tokens, start_pos=11)
    torch.testing.assert_close(shifted, _reference(model, tokens, start_pos=11), atol=1e-5, rtol=0)
    # Without a cache a common shift is invariant (RoPE is relative), so prove which table rows
    # are read: scrambling rows outside 11..19 changes nothing, scrambling one inside does.
    with torch.no_grad():
        model.freqs_cis[:11] = 1j
        model.freqs_cis[20:] = -1
    torch.testing.assert_close(model(tokens, start_pos=11), shifted, atol=0, rtol=0)
    with torch.no_grad():
        model.freqs_cis[15] = 1j
    assert not torch.allclose(model(tokens, start_pos=11), shifted, atol=1e-3)
    with pytest.raises(ValueError, match="RoPE table"):
        model(tokens, start_pos=2 * 32 - 8)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_close_to_float32_reference(dtype: torch.dtype) -> None:
    model = _model(CONFIGS["gqa"])
    tokens = _tokens()
    reference = _reference(model, tokens)
    logits = model.to(dtype)(tokens)
    assert model.tok_embeddings.weight.dtype == dtype
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    scale = reference.abs().max()
    assert (logits - reference).abs().max() <= 0.05 * scale
    cosine = torch.nn.functional.cosine_similarity(logits.flatten(), reference.flatten(), dim=0)
    assert cosine > 0.999


def test_kv_cache_incremental_decoding_equals_full_forward() -> None:
    model = _model(CONFIGS["gqa"])
    tokens = _tokens(seqlen=12)
    full = model(tokens)
    cache = model.new_kv_cache(batch_size=2, max_len=16)
    pieces = [model(tokens[:, :4], start_pos=0, kv_cache=cache)]
    pieces += [model(tokens[:, p : p + 1], start_pos=p, kv_cache=cache) for p in range(4, 8)]
    pieces.append(model(tokens[:, 8:12], start_pos=8, kv_cache=cache))  # chunk after a prefix
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)

    rewound = model(tokens[:, 6:9], start_pos=6, kv_cache=cache)  # rewrite from position 6
    torch.testing.assert_close(rewound, full[:, 6:9], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="cannot write at start_pos 10"):
        model(tokens[:, 10:11], start_pos=10, kv_cache=cache)


def test_kv_cache_refuses_heads_it_skipped() -> None:
    model = _model(CONFIGS["gqa"])
    tokens = _tokens(seqlen=6)
    cache = model.new_kv_cache(batch_size=2, max_len=8)
    head0 = model(tokens[:, :5], kv_cache=cache, return_all_heads=False)
    torch.testing.assert_close(head0, model(tokens[:, :5])[:, :, :1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="return_all_heads=False"):
        model(tokens[:, 5:6], start_pos=5, kv_cache=cache)


def test_gradients_reach_every_parameter_of_every_head() -> None:
    model = _model(CONFIGS["gqa"])
    tokens = _tokens()
    logits = model(tokens)
    targets = _tokens(seed=2).unsqueeze(-1).expand(-1, -1, logits.shape[2])
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 2), targets.flatten())
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_meta_device_7b_layout_uses_no_memory() -> None:
    with torch.device("meta"):
        model = Transformer(SEVEN_B)
    state = model.state_dict()
    assert len(state) == 291
    assert sum(t.numel() for t in state.values()) == 6_738_415_616 == num_parameters(SEVEN_B)
    assert all(t.is_meta for t in state.values())
    assert not any("freqs" in key for key in state)
    assert model.freqs_cis.is_meta and model.freqs_cis.dtype == torch.complex64
    shapes = {key: tuple(t.shape) for key, t in state.items()}
    assert list(expected_state_dict_shapes(SEVEN_B).items()) == list(shapes.items())
    assert SEVEN_B.ffn_hidden_dim == 11008
    assert shapes["layers.28.feed_forward.w2.weight"] == (4096, 11008)
    assert "layers.29.attention.wq.weight" not in shapes
    assert "extra_heads.2.ffn_norm.weight" in shapes
    assert "extra_heads.3.ffn_norm.weight" not in shapes


def test_micro_layout() -> None:
    shapes = expected_state_dict_shapes(MICRO)
    assert MICRO.ffn_hidden_dim == 1536
    prefixes = sorted({".".join(key.split(".")[:2]) for key in shapes if key.count(".") >= 3})
    assert prefixes == ["extra_heads.0", "extra_heads.1", "extra_heads.2", "layers.0"]
    assert num_parameters(MICRO) == 46_404_096
    with torch.device("meta"):
        model = Transformer(MICRO)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes


def test_ffn_hidden_dim_rounding() -> None:
    assert ModelArgs(dim=8192, n_layers=1, n_heads=64, vocab_size=1).ffn_hidden_dim == 22016
    llama2_70b = ModelArgs(
        dim=8192, n_layers=1, n_heads=64, vocab_size=1, multiple_of=4096, ffn_dim_multiplier=1.3
    )
    assert llama2_70b.ffn_hidden_dim == 28672


def test_loads_meta_state_dict_strictly() -> None:
    source = _model(CONFIGS["gqa"], seed=3)
    state = {**source.state_dict(), "rope.freqs": torch.zeros(4)}
    model = Transformer(source.args)
    model.load_meta_state_dict(state)
    tokens = _tokens()
    torch.testing.assert_close(model(tokens), source(tokens), atol=0, rtol=0)


def _mismatch(state: dict[str, torch.Tensor], model: Transformer) -> StateDictMismatchError:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(StateDictMismatchError) as info:
        model.load_meta_state_dict(state, source="ckpt.pth")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "nothing loads on mismatch"
    assert "ckpt.pth" in str(info.value)
    return info.value


def test_state_dict_mismatches_name_every_key() -> None:
    source = _model(CONFIGS["gqa"])
    model = _model(CONFIGS["gqa"], seed=9)
    state = dict(source.state_dict())
    wk, w2 = "layers.1.attention.wk.weight", "extra_heads.1.feed_forward.w2.weight"

    missing = _mismatch({k: v for k, v in state.items() if k not in (wk, w2)}, model)
    assert missing.missing == [wk, w2] and not missing.unexpected and not missing.mis_shaped
    assert wk in str(missing) and w2 in str(missing)

    unexpected = _mismatch({**state, "extra_heads.7.bogus": torch.zeros(1)}, model)
    assert unexpected.unexpected == ["extra_heads.7.bogus"] and not unexpected.missing
    assert "extra_heads.7.bogus" in str(unexpected)

    misshaped = _mismatch({**state, wk: torch.zeros(32, 32)}, model)
    assert misshaped.mis_shaped == [(wk, (16, 32), (32, 32))]
    assert wk in str(misshaped) and "[16, 32]" in str(misshaped) and "[32, 32]" in str(misshaped)


def test_check_state_dict_accepts_exact_shapes() -> None:
    check_state_dict(SEVEN_B, {k: list(v) for k, v in expected_state_dict_shapes(SEVEN_B).items()})
    with pytest.raises(StateDictMismatchError, match=r"rope\.freqs"):
        check_state_dict(SEVEN_B, {**expected_state_dict_shapes(SEVEN_B), "rope.freqs": (64,)})


def test_freqs_cis_survives_dtype_and_device_moves() -> None:
    model = _model()
    expected = precompute_freqs_cis(8, 64, 10000.0)
    assert "freqs_cis" not in model.state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complex->real cast would warn
        model.to(torch.bfloat16)
        assert model.freqs_cis.dtype == torch.complex64
        model.half().float()
    assert model.freqs_cis.dtype == torch.complex64
    torch.testing.assert_close(model.freqs_cis, expected, atol=0, rtol=0)

    model.to("meta")
    assert model.freqs_cis.is_meta and model.tok_embeddings.weight.is_meta
    model.to_empty(device="cpu")
    torch.testing.assert_close(model.freqs_cis, expected, atol=0, rtol=0)
    model.freqs_cis.zero_()
    model.reset_rope()
    torch.testing.assert_close(model.freqs_cis, expected, atol=0, rtol=0)


def test_meta_build_then_materialise_and_load() -> None:
    source = _model(CONFIGS["mtp2"], seed=4)
    with torch.device("meta"):
        model = Transformer(source.args)
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    model.load_meta_state_dict(source.state_dict())
    tokens = _tokens()
    torch.testing.assert_close(model(tokens), source.to(torch.bfloat16)(tokens), atol=0, rtol=0)


def test_init_weights_is_deterministic() -> None:
    first, second, other = _model(seed=7), _model(seed=7), _model(seed=8)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
        if value.dim() == 2:
            assert not torch.equal(value, other.state_dict()[key]), key
        else:
            assert torch.equal(value, torch.ones_like(value)), key
    generator = torch.Generator().manual_seed(7)  # the contract: sorted names, one CPU stream
    for name, shape in sorted(expected_state_dict_shapes(first.args).items()):
        if len(shape) == 2:
            drawn = torch.empty(shape).normal_(0.0, STD, generator=generator)
            assert torch.equal(first.state_dict()[name], drawn), name
    half = Transformer(first.args).to(torch.float16)
    half.init_weights(7, std=STD)
    assert torch.equal(half.output.weight, first.output.weight.half())
    with torch.device("meta"):
        meta = Transformer(first.args)
    with pytest.raises(ValueError, match="meta device"):
        meta.init_weights(0)


def test_blocks_are_transformer_blocks() -> None:
    model = _model(CONFIGS["gqa"])
    blocks = [m for m in model.modules() if isinstance(m, TransformerBlock)]
    assert blocks == [*model.layers, *model.extra_heads]
    assert model.prediction_heads() == [model.layers[-1], *model.extra_heads]


# ModelArgs ------------------------------------------------------------------------------------

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
    again = ModelArgs.from_params_json(_write(tmp_path, args.to_params_json(), "again.json"))
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
        ModelArgs(dim=0, n_layers=2, n_heads=4, vocab_size=1.5)
    assert info.value.fields == ["dim", "vocab_size"]
    with pytest.raises(ModelArgsError, match="unknown field"):
        ModelArgs(dim=8, n_layers=2, n_heads=4, vocab_size=1, hidden=3)
    with pytest.raises(ModelArgsError, match="n_future_tokens"):
        ModelArgs.model_validate({**BASE, "n_future_tokens": 4})


def test_hf_config_round_trips(tmp_path: Path) -> None:
    for args in (SEVEN_B, MICRO, ModelArgs(**{**BASE, **CONFIGS["ffn-multiplier"]})):
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
