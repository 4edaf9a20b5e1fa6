"""Tensor names and shapes a config implies (Meta MTP, HF Llama, a Llama reward model), and
the one diff of them.

Both conversions check a checkpoint against these before writing anything, the model checks a
state dict before loading it, and the ``keys_and_shapes_match_config`` check compares a stored
file with them; all through :func:`diff_shapes` and :class:`ShapeMismatchError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from wmtp_assets.models.hf_llama import HFConfigError
from wmtp_assets.models.mtp.args import ModelArgs

Shapes = dict[str, tuple[int, ...]]

_SHOWN = 20
"""At most this many names of each kind appear in an error message (all stay on the error)."""


def _block_shapes(args: ModelArgs) -> Shapes:
    dim, ffn, kv_dim = args.dim, args.ffn_hidden_dim, args.kv_heads * args.head_dim
    return {
        "attention.wq.weight": (args.n_heads * args.head_dim, dim),
        "attention.wk.weight": (kv_dim, dim),
        "attention.wv.weight": (kv_dim, dim),
        "attention.wo.weight": (dim, args.n_heads * args.head_dim),
        "feed_forward.w1.weight": (ffn, dim),
        "feed_forward.w2.weight": (dim, ffn),
        "feed_forward.w3.weight": (ffn, dim),
        "attention_norm.weight": (dim,),
        "ffn_norm.weight": (dim,),
    }


def meta_shapes(args: ModelArgs) -> Shapes:
    """Keys and shapes of ``Transformer(args).state_dict()``, in its order, without tensors."""
    shapes: Shapes = {"tok_embeddings.weight": (args.vocab_size, args.dim)}
    block = _block_shapes(args)
    prefixes = [f"layers.{i}" for i in range(args.n_trunk_layers)]
    prefixes += [f"extra_heads.{j}" for j in range(args.n_extra_heads)]
    for prefix in prefixes:
        shapes.update({f"{prefix}.{name}": shape for name, shape in block.items()})
    shapes["norm.weight"] = (args.dim,)
    shapes["output.weight"] = (args.vocab_size, args.dim)
    return shapes


def _int_field(config: Mapping[str, Any], field: str, source: str) -> int:
    value = config.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise HFConfigError(f"{source}: field {field!r} must be a positive integer, got {value!r}")
    return value


def hf_llama_shapes(config: Mapping[str, Any], source: str = "config.json") -> Shapes:
    """Every parameter of ``LlamaForCausalLM`` for ``config`` (no rotary buffers)."""
    hidden = _int_field(config, "hidden_size", source)
    inter = _int_field(config, "intermediate_size", source)
    layers = _int_field(config, "num_hidden_layers", source)
    heads = _int_field(config, "num_attention_heads", source)
    vocab = _int_field(config, "vocab_size", source)
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    if hidden % heads:
        raise HFConfigError(f"{source}: hidden_size {hidden} is not divisible by {heads} heads")
    shapes: Shapes = {
        "model.embed_tokens.weight": (vocab, hidden),
        "model.norm.weight": (hidden,),
    }
    if not config.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (vocab, hidden)
    for i in range(layers):
        p = f"model.layers.{i}"
        shapes |= {
            f"{p}.self_attn.q_proj.weight": (heads * head_dim, hidden),
            f"{p}.self_attn.k_proj.weight": (kv_heads * head_dim, hidden),
            f"{p}.self_attn.v_proj.weight": (kv_heads * head_dim, hidden),
            f"{p}.self_attn.o_proj.weight": (hidden, heads * head_dim),
            f"{p}.mlp.gate_proj.weight": (inter, hidden),
            f"{p}.mlp.up_proj.weight": (inter, hidden),
            f"{p}.mlp.down_proj.weight": (hidden, inter),
            f"{p}.input_layernorm.weight": (hidden,),
            f"{p}.post_attention_layernorm.weight": (hidden,),
        }
    return shapes


REWARD_HEAD = "v_head.weight"


def llama_reward_shapes(
    config: Mapping[str, Any], prefix: str, source: str = "config.json"
) -> Shapes:
    """A Llama reward model's parameters (Starling-RM, REFERENCE §11): ``LlamaModel`` (the
    decoder without ``lm_head``) under ``prefix`` (``transformer.``, ``model.`` or none), and
    the bias-free value head ``v_head.weight`` ``[1, hidden]``."""
    decoder = {
        prefix + name.removeprefix("model."): shape
        for name, shape in hf_llama_shapes(config, source).items()
        if name != "lm_head.weight"
    }
    return {**decoder, REWARD_HEAD: (1, _int_field(config, "hidden_size", source))}


class ShapeDiff(BaseModel):
    """How found tensors differ from expected ones: ``missing`` and ``mis_shaped`` in expected
    order, ``unexpected`` sorted; ``mis_shaped`` holds ``(name, expected, found)``."""

    missing: list[str]
    unexpected: list[str]
    mis_shaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mis_shaped)


def diff_shapes(
    expected: Mapping[str, Sequence[int]], found: Mapping[str, Sequence[int]]
) -> ShapeDiff:
    """Compare two ``{name: shape}`` mappings; an empty (falsy) diff means they are equal."""
    want = {name: tuple(int(n) for n in shape) for name, shape in expected.items()}
    have = {name: tuple(int(n) for n in shape) for name, shape in found.items()}
    return ShapeDiff(
        missing=[name for name in want if name not in have],
        unexpected=sorted(name for name in have if name not in want),
        mis_shaped=[
            (name, shape, have[name])
            for name, shape in want.items()
            if name in have and have[name] != shape
        ],
    )


class ShapeMismatchError(ValueError):
    """Tensors of ``source`` that do not match what ``against`` implies, listed per kind.

    ``files`` (name -> file name) adds where each found tensor is, for sharded checkpoints.
    """

    def __init__(
        self,
        source: str,
        diff: ShapeDiff,
        against: str = "the model args",
        files: Mapping[str, str] | None = None,
    ) -> None:
        self.source = source
        self.missing = diff.missing
        self.unexpected = diff.unexpected
        self.mis_shaped = diff.mis_shaped

        def where(name: str) -> str:
            return f"{name} (in {files[name]})" if files and name in files else name

        parts = []
        if diff.missing:
            parts.append(f"missing {len(diff.missing)}: {', '.join(diff.missing[:_SHOWN])}")
        if diff.unexpected:
            shown = ", ".join(where(n) for n in diff.unexpected[:_SHOWN])
            parts.append(f"unexpected {len(diff.unexpected)}: {shown}")
        if diff.mis_shaped:
            shown = ", ".join(
                f"{where(n)} is {list(found)}, expected {list(shape)}"
                for n, shape, found in diff.mis_shaped[:_SHOWN]
            )
            parts.append(f"mis-shaped {len(diff.mis_shaped)}: {shown}")
        super().__init__(f"{source}: tensors do not match {against}; " + "; ".join(parts))


def require_shapes(
    expected: Mapping[str, Sequence[int]],
    found: Mapping[str, Sequence[int]],
    source: str,
    against: str = "the model args",
    files: Mapping[str, str] | None = None,
) -> None:
    """Raise :class:`ShapeMismatchError` unless ``found`` has exactly the ``expected`` shapes."""
    diff = diff_shapes(expected, found)
    if diff:
        raise ShapeMismatchError(source, diff, against, files)
