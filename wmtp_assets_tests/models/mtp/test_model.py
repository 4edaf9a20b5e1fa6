"""The MTP Transformer against an independent reference, loading and device handling."""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
import torch

from wmtp_assets.models.mtp.args import ModelArgs
from wmtp_assets.models.mtp.model import Transformer, TransformerBlock, rope
from wmtp_assets.models.shapes import ShapeMismatchError, meta_shapes
from wmtp_assets_tests.models.mtp.reference_llama import ReferenceConfig, reference_forward

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


def test_start_pos_without_cache_is_an_error() -> None:
    """Meta's start_pos means "continue the cached sequence"; without a cache it must not
    silently shift the RoPE positions (code ported from Meta would get wrong logits)."""
    model = _model(CONFIGS["gqa"])
    tokens = _tokens()
    with pytest.raises(ValueError, match=r"start_pos=11 without a kv_cache"):
        model(tokens, start_pos=11)
    assert torch.equal(model(tokens, start_pos=0), model(tokens))


def test_start_pos_continues_the_cache_at_its_rope_positions() -> None:
    model = _model(CONFIGS["gqa"])
    tokens = _tokens(seqlen=20)
    cache = model.new_kv_cache(batch_size=2, max_len=20)
    model(tokens[:, :11], kv_cache=cache)
    continued = model(tokens[:, 11:], start_pos=11, kv_cache=cache)
    reference = _reference(model, tokens)[:, 11:]
    torch.testing.assert_close(continued, reference, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="RoPE table"):
        model(tokens[:, :9], start_pos=2 * 32 - 8, kv_cache=model.new_kv_cache(2, 64))


def test_rope_equals_metas_complex_table() -> None:
    """cos/sin are Meta's ``polar(1, outer(arange(2*max_seq_len), theta^(-2i/hd)))``."""
    args = ModelArgs(**{**BASE, "rope_theta": 500000.0})
    hd = args.head_dim
    freqs = 1.0 / (500000.0 ** (torch.arange(0, hd, 2)[: hd // 2].float() / hd))
    table = torch.polar(torch.ones(64, hd // 2), torch.outer(torch.arange(64).float(), freqs))
    cos, sin = rope(args, 5, 7, "cpu")
    torch.testing.assert_close(cos, table.real[5:12], atol=1e-6, rtol=0)
    torch.testing.assert_close(sin, table.imag[5:12], atol=1e-6, rtol=0)
    assert cos.dtype == torch.float32


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
    assert sum(t.numel() for t in state.values()) == 6_738_415_616
    assert all(t.is_meta for t in state.values())
    assert not any("freqs" in key for key in state) and not list(model.buffers())
    shapes = {key: tuple(t.shape) for key, t in state.items()}
    assert list(meta_shapes(SEVEN_B).items()) == list(shapes.items())
    assert SEVEN_B.ffn_hidden_dim == 11008
    assert shapes["layers.28.feed_forward.w2.weight"] == (4096, 11008)
    assert "layers.29.attention.wq.weight" not in shapes
    assert "extra_heads.2.ffn_norm.weight" in shapes
    assert "extra_heads.3.ffn_norm.weight" not in shapes


def test_micro_layout() -> None:
    shapes = meta_shapes(MICRO)
    assert MICRO.ffn_hidden_dim == 1536
    prefixes = sorted({".".join(key.split(".")[:2]) for key in shapes if key.count(".") >= 3})
    assert prefixes == ["extra_heads.0", "extra_heads.1", "extra_heads.2", "layers.0"]
    assert sum(math.prod(shape) for shape in shapes.values()) == 46_404_096
    with torch.device("meta"):
        model = Transformer(MICRO)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes


def test_loads_meta_state_dict_strictly() -> None:
    source = _model(CONFIGS["gqa"], seed=3)
    state = {**source.state_dict(), "rope.freqs": torch.zeros(4)}
    model = Transformer(source.args)
    model.load_meta_state_dict(state)
    tokens = _tokens()
    torch.testing.assert_close(model(tokens), source(tokens), atol=0, rtol=0)


def _mismatch(state: dict[str, torch.Tensor], model: Transformer) -> ShapeMismatchError:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ShapeMismatchError) as info:
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


def test_dtype_and_device_moves_keep_rope_exact() -> None:
    """No RoPE buffer: casting the module never rounds the rotation (Meta keeps it float32)."""
    model = _model(CONFIGS["gqa"])
    tokens = _tokens()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.to(torch.float64).half().float()
    assert "freqs_cis" not in model.state_dict() and not list(model.buffers())
    torch.testing.assert_close(model(tokens), _reference(model, tokens), atol=1e-5, rtol=1e-5)
    model.to("meta")
    assert model.tok_embeddings.weight.is_meta
    model.to_empty(device="cpu")
    model.init_weights(0, std=STD)
    torch.testing.assert_close(model(tokens), _model(CONFIGS["gqa"])(tokens), atol=0, rtol=0)


def test_one_block_loads_and_runs_alone() -> None:
    """A block built alone, loaded from its checkpoint prefix, gives the model's block output."""
    model = _model(CONFIGS["gqa"])
    args = model.args
    state = model.state_dict()
    block = TransformerBlock(args)
    prefix = "extra_heads.1."
    block.load_state_dict(
        {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    )
    x = torch.randn(2, 9, args.dim, generator=torch.Generator().manual_seed(3))
    angles = rope(args, 0, 9, "cpu")
    torch.testing.assert_close(
        block(x, 0, angles), model.extra_heads[1](x, 0, angles), atol=0, rtol=0
    )


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
    for name, shape in sorted(meta_shapes(first.args).items()):
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
