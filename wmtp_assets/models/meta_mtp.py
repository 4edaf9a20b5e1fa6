"""Meta's multi-token-prediction Llama (``facebook/multi-token-prediction``) in plain PyTorch.

The contract is Meta's checkpoint: key names, shapes and the forward computation of the original
``llama/model.py`` of the MTP release (REFERENCE.md §1), so a ``consolidated.pth`` loads strictly
and gives Meta's logits. Unlike the original, this module is trainable (no ``inference_mode``,
no fairscale parallel layers), runs on any device and dtype, can be built on the ``meta`` device
and wrapped per block by FSDP.

Architecture in one paragraph: ``layers`` holds ``n_layers - n_future_tokens + 1`` blocks and
``extra_heads`` ``n_future_tokens - 1``. The trunk is ``layers[:-1]``; the prediction heads are
``[layers[-1], *extra_heads]`` and each of them takes the trunk output (they run in parallel, not
chained). Head outputs are stacked on dim -2 and go through one shared ``norm`` and ``output``,
giving float32 logits ``[batch, seq, n_heads_used, vocab]``.

Deliberate differences from Meta's code, none of which changes the result beyond rounding:

- attention uses ``F.scaled_dot_product_attention``. Meta computes the scores in the model dtype
  and the softmax in float32; the SDPA kernels accumulate the scores, the softmax and the weighted
  sum in float32 for half-precision inputs, so they are at least as accurate (tests compare
  float16/bfloat16 modules to a float32 reference with per-head loops and a materialised mask);
- the KV cache is optional and owned by the caller (``Transformer.new_kv_cache``), not a buffer of
  every attention module sized for inference;
- ``return_all_heads`` defaults to True, the training use.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from torch import Tensor, nn

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]

ROPE_FREQS_KEY = "rope.freqs"
"""Extra tensor some Meta Llama checkpoints carry; it is recomputed from the args, never loaded."""


class ModelArgsError(ValueError):
    """Invalid or contradictory model hyperparameters.

    ``problems`` pairs each offending field (as spelled in the source) with what is wrong;
    ``source`` is the file the args came from, or None for direct construction. The message names
    every field and the source.
    """

    def __init__(self, problems: Sequence[tuple[str, str]], source: str | None = None) -> None:
        self.problems: list[tuple[str, str]] = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        details = "; ".join(f"field '{field}': {message}" for field, message in self.problems)
        super().__init__(f"invalid model args{where}: {details}")

    @property
    def fields(self) -> list[str]:
        """The offending field names, in the order found."""
        return [field for field, _ in self.problems]

    def with_source(self, source: str) -> ModelArgsError:
        """The same problems, attributed to ``source``."""
        return ModelArgsError(self.problems, source)


class _InconsistentArgs(ValueError):
    """Raised inside pydantic validation to carry per-field problems through ValidationError."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))


def _problems_from(exc: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for error in exc.errors():
        original = error.get("ctx", {}).get("error")
        if isinstance(original, _InconsistentArgs):
            problems.extend(original.problems)
            continue
        field = str(error["loc"][0]) if error["loc"] else "<args>"
        if error["type"] == "missing":
            message = "required, but missing"
        elif error["type"] == "extra_forbidden":
            message = "unknown field"
        else:
            message = f"{error['msg']} (got {error['input']!r})"
        problems.append((field, message))
    return problems


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArgsError([("<file>", f"cannot read a JSON object: {exc}")], str(path)) from exc
    if not isinstance(data, dict):
        raise ModelArgsError(
            [("<file>", f"expected a JSON object, got {type(data).__name__}")], str(path)
        )
    return data


def _same_value(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or expected is None:
        return value is expected
    return value == expected


_META_ALIASES = {"rms_norm_eps": "norm_eps", "max_position_embeddings": "max_seq_len"}
_META_IGNORED = frozenset({"max_batch_size"})

_HF_TO_FIELD = {
    "hidden_size": "dim",
    "num_hidden_layers": "n_layers",
    "num_attention_heads": "n_heads",
    "num_key_value_heads": "n_kv_heads",
    "vocab_size": "vocab_size",
    "rms_norm_eps": "norm_eps",
    "max_position_embeddings": "max_seq_len",
    "rope_theta": "rope_theta",
    "n_future_tokens": "n_future_tokens",
    "multiple_of": "multiple_of",
    "ffn_dim_multiplier": "ffn_dim_multiplier",
}
_HF_INFORMATIONAL = frozenset(
    {
        "architectures",
        "model_type",
        "torch_dtype",
        "dtype",
        "transformers_version",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "initializer_range",
        "use_cache",
        "pretraining_tp",
    }
)
_HF_REQUIRED_VALUES: dict[str, Any] = {
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "attention_bias": False,
    "mlp_bias": False,
    "rope_scaling": None,
    "attention_dropout": 0.0,
}
_HF_DERIVED = frozenset({"intermediate_size", "head_dim"})


class ModelArgs(BaseModel):
    """Hyperparameters of the MTP Transformer, Meta's names (``params.json``).

    Strictly typed (``"4096"`` or ``true`` is not an int). ``n_kv_heads`` left at None is stored
    as ``n_heads``, so two args describing the same model compare equal whatever file they came
    from. Construction via ``ModelArgs(...)``, ``model_validate``, ``from_params_json`` or
    ``from_hf_config`` raises ``ModelArgsError`` naming every bad field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    dim: PositiveInt
    n_layers: PositiveInt
    n_heads: PositiveInt
    n_kv_heads: PositiveInt | None = Field(default=None, validate_default=True)
    vocab_size: PositiveInt
    multiple_of: PositiveInt = 256
    ffn_dim_multiplier: PositiveFloat | None = None
    norm_eps: PositiveFloat = 1e-5
    rope_theta: PositiveFloat = 10000.0
    n_future_tokens: PositiveInt = 1
    max_seq_len: PositiveInt = 2048

    if not TYPE_CHECKING:  # keep pydantic's typed signature for type checkers and IDEs

        def __init__(self, /, **data: Any) -> None:
            try:
                super().__init__(**data)
            except ValidationError as exc:
                raise ModelArgsError(_problems_from(exc)) from exc

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> ModelArgs:
        """Pydantic's ``model_validate``, raising ``ModelArgsError`` like the constructor."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise ModelArgsError(_problems_from(exc)) from exc

    @field_validator("n_kv_heads", mode="after")
    @classmethod
    def _default_kv_heads(cls, value: int | None, info: ValidationInfo) -> int | None:
        return info.data.get("n_heads") if value is None else value

    @model_validator(mode="after")
    def _consistent(self) -> ModelArgs:
        problems: list[tuple[str, str]] = []
        if self.n_future_tokens > self.n_layers:
            problems.append(
                (
                    "n_future_tokens",
                    f"must be between 1 and n_layers ({self.n_layers}), got {self.n_future_tokens}",
                )
            )
        if self.dim % self.n_heads:
            problems.append(
                ("dim", f"must be divisible by n_heads ({self.n_heads}), got {self.dim}")
            )
        elif self.head_dim % 2:
            problems.append(
                ("dim", f"dim / n_heads (head_dim) must be even for RoPE, got {self.head_dim}")
            )
        if self.n_heads % self.kv_heads:
            problems.append(
                (
                    "n_kv_heads",
                    f"must divide n_heads ({self.n_heads}), got {self.kv_heads}",
                )
            )
        if problems:
            raise _InconsistentArgs(problems)
        return self

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def ffn_hidden_dim(self) -> int:
        """Meta's SwiGLU width: ``int(2*4*dim/3)``, times the multiplier, rounded up."""
        hidden = int(2 * 4 * self.dim / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)

    @property
    def n_trunk_layers(self) -> int:
        """Length of ``Transformer.layers`` (the trunk plus prediction head 0)."""
        return self.n_layers - self.n_future_tokens + 1

    @property
    def n_extra_heads(self) -> int:
        """Length of ``Transformer.extra_heads``."""
        return self.n_future_tokens - 1

    @classmethod
    def _build(cls, data: dict[str, Any], source: str) -> ModelArgs:
        try:
            return cls(**data)
        except ModelArgsError as exc:
            raise exc.with_source(source) from exc.__cause__

    @classmethod
    def from_params_json(
        cls, path: str | os.PathLike[str], vocab_size: int | None = None
    ) -> ModelArgs:
        """Read Meta's ``params.json`` (also the plan's aliases for norm_eps and max_seq_len).

        ``vocab_size`` is the tokenizer's: it fills a file's ``"vocab_size": -1`` (Llama-2
        convention) and must agree with an explicit value. ``max_batch_size`` is inference-only and
        ignored. Unknown keys, contradictory aliases and bad types are errors naming the file.
        """
        path = Path(path)
        source = str(path)
        data = _read_json_object(path)
        known = set(cls.model_fields) | set(_META_ALIASES) | _META_IGNORED
        unknown = sorted(key for key in data if key not in known)
        if unknown:
            raise ModelArgsError([(key, "unknown key") for key in unknown], source)
        for key in _META_IGNORED:
            data.pop(key, None)
        problems: list[tuple[str, str]] = []
        for alias, name in _META_ALIASES.items():
            if alias not in data:
                continue
            value = data.pop(alias)
            if name in data and not _same_value(data[name], value):
                problems.append(
                    (f"{name}/{alias}", f"contradict each other: {data[name]!r} vs {value!r}")
                )
            data.setdefault(name, value)
        file_vocab = data.get("vocab_size")
        if type(file_vocab) is int and file_vocab == -1:
            if vocab_size is None:
                problems.append(
                    (
                        "vocab_size",
                        "is -1 (take it from the tokenizer) but no vocab_size argument was given",
                    )
                )
            else:
                data["vocab_size"] = vocab_size
        elif vocab_size is not None and file_vocab != vocab_size and "vocab_size" in data:
            problems.append(
                ("vocab_size", f"file says {file_vocab!r} but the tokenizer has {vocab_size}")
            )
        if problems:
            raise ModelArgsError(problems, source)
        return cls._build(data, source)

    @classmethod
    def from_hf_config(cls, config: str | os.PathLike[str] | Mapping[str, Any]) -> ModelArgs:
        """Read an HF-style ``config.json`` (path or already-parsed mapping).

        Informational HF keys are tolerated; keys that would change the computation must hold the
        value this architecture implies (``hidden_act`` "silu", untied embeddings, no biases, no
        rope scaling, no attention dropout, ``head_dim`` = dim / n_heads, ``intermediate_size`` =
        the rounding rule's width). Anything else is an error naming the key and the source.
        """
        if isinstance(config, Mapping):
            source = "HF config (mapping)"
            raw = dict(config)
        else:
            source = str(Path(config))
            raw = _read_json_object(Path(config))
        known = set(_HF_TO_FIELD) | _HF_INFORMATIONAL | set(_HF_REQUIRED_VALUES) | _HF_DERIVED
        unknown = sorted(key for key in raw if key not in known)
        if unknown:
            raise ModelArgsError([(key, "unknown key") for key in unknown], source)
        problems = [
            (key, f"must be {expected!r} for this architecture, got {raw[key]!r}")
            for key, expected in _HF_REQUIRED_VALUES.items()
            if key in raw and not _same_value(raw[key], expected)
        ]
        if problems:
            raise ModelArgsError(problems, source)
        data = {field: raw[key] for key, field in _HF_TO_FIELD.items() if key in raw}
        try:
            args = cls(**data)
        except ModelArgsError as exc:
            field_to_hf = {field: key for key, field in _HF_TO_FIELD.items()}
            renamed = [(field_to_hf.get(field, field), message) for field, message in exc.problems]
            raise ModelArgsError(renamed, source) from exc.__cause__
        derived = {"intermediate_size": args.ffn_hidden_dim, "head_dim": args.head_dim}
        for key, expected in derived.items():
            value = raw.get(key)
            if value is not None and (type(value) is not int or value != expected):
                problems.append(
                    (key, f"file says {value!r} but the args imply {expected} (dim {args.dim})")
                )
        if problems:
            raise ModelArgsError(problems, source)
        return args

    def to_params_json(self) -> dict[str, Any]:
        """Meta's spelling; ``from_params_json`` reads it back to an equal ``ModelArgs``."""
        return self.model_dump()

    def to_hf_config(self) -> dict[str, Any]:
        """HF-style spelling; ``from_hf_config`` reads it back to an equal ``ModelArgs``."""
        return {
            "architectures": ["MetaMTPTransformer"],
            "model_type": "wmtp_meta_mtp",
            "hidden_size": self.dim,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.kv_heads,
            "vocab_size": self.vocab_size,
            "intermediate_size": self.ffn_hidden_dim,
            "rms_norm_eps": self.norm_eps,
            "max_position_embeddings": self.max_seq_len,
            "rope_theta": self.rope_theta,
            "n_future_tokens": self.n_future_tokens,
            "multiple_of": self.multiple_of,
            "ffn_dim_multiplier": self.ffn_dim_multiplier,
            "tie_word_embeddings": False,
            "hidden_act": "silu",
        }


def _block_shapes(args: ModelArgs) -> dict[str, tuple[int, ...]]:
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


def expected_state_dict_shapes(args: ModelArgs) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of ``Transformer(args).state_dict()``, in its order, without tensors."""
    shapes: dict[str, tuple[int, ...]] = {"tok_embeddings.weight": (args.vocab_size, args.dim)}
    block = _block_shapes(args)
    prefixes = [f"layers.{i}" for i in range(args.n_trunk_layers)]
    prefixes += [f"extra_heads.{j}" for j in range(args.n_extra_heads)]
    for prefix in prefixes:
        shapes.update({f"{prefix}.{name}": shape for name, shape in block.items()})
    shapes["norm.weight"] = (args.dim,)
    shapes["output.weight"] = (args.vocab_size, args.dim)
    return shapes


def num_parameters(args: ModelArgs) -> int:
    """Parameter count of ``Transformer(args)``."""
    return sum(math.prod(shape) for shape in expected_state_dict_shapes(args).values())


class StateDictMismatchError(ValueError):
    """A state dict whose keys or shapes differ from what the args imply.

    ``missing``/``unexpected`` are key names; ``mis_shaped`` holds ``(key, expected, found)``.
    """

    def __init__(
        self,
        missing: Sequence[str],
        unexpected: Sequence[str],
        mis_shaped: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]],
        source: str = "state dict",
    ) -> None:
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mis_shaped = list(mis_shaped)
        self.source = source
        parts = []
        if self.missing:
            parts.append(f"missing {len(self.missing)} key(s): {', '.join(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected {len(self.unexpected)} key(s): {', '.join(self.unexpected)}")
        if self.mis_shaped:
            shaped = ", ".join(
                f"{key} expected {list(expected)} found {list(found)}"
                for key, expected, found in self.mis_shaped
            )
            parts.append(f"{len(self.mis_shaped)} mis-shaped key(s): {shaped}")
        super().__init__(f"{source} does not match the model args: " + "; ".join(parts))


def check_state_dict(
    args: ModelArgs, shapes: Mapping[str, Sequence[int]], source: str = "state dict"
) -> None:
    """Raise ``StateDictMismatchError`` unless ``shapes`` has exactly the expected keys/shapes."""
    expected = expected_state_dict_shapes(args)
    found = {key: tuple(int(n) for n in shape) for key, shape in shapes.items()}
    missing = [key for key in expected if key not in found]
    unexpected = sorted(key for key in found if key not in expected)
    mis_shaped = [
        (key, shape, found[key])
        for key, shape in expected.items()
        if key in found and found[key] != shape
    ]
    if missing or unexpected or mis_shaped:
        raise StateDictMismatchError(missing, unexpected, mis_shaped, source)


def precompute_freqs_cis(head_dim: int, end: int, theta: float) -> Tensor:
    """Meta's RoPE table ``[end, head_dim/2]`` complex64, computed on CPU in float32."""
    exponents = torch.arange(0, head_dim, 2, device="cpu")[: head_dim // 2].float() / head_dim
    inv_freq = 1.0 / (theta**exponents)
    positions = torch.arange(end, device="cpu", dtype=torch.float32)
    angles = torch.outer(positions, inv_freq)
    return torch.polar(torch.ones_like(angles), angles)


def _rope_table(args: ModelArgs, device: torch.device) -> Tensor:
    end = 2 * args.max_seq_len
    if device.type == "meta":
        return torch.empty(end, args.head_dim // 2, dtype=torch.complex64, device=device)
    return precompute_freqs_cis(args.head_dim, end, args.rope_theta).to(device)


def apply_rotary_emb(xq: Tensor, xk: Tensor, freqs_cis: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate pairs ``(x[2i], x[2i+1])`` of ``[B, T, heads, hd]`` by ``freqs_cis[T, hd/2]``."""
    xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
    xk_ = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
    freqs = freqs_cis.view(1, xq_.shape[1], 1, xq_.shape[-1])
    xq_out = torch.view_as_real(xq_ * freqs).flatten(3)
    xk_out = torch.view_as_real(xk_ * freqs).flatten(3)
    return xq_out.type_as(xq), xk_out.type_as(xk)


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """``[B, S, kv_heads, hd]`` -> ``[B, S, kv_heads*n_rep, hd]``; head h reads kv head h//n_rep."""
    if n_rep == 1:
        return x
    bsz, seqlen, n_kv_heads, head_dim = x.shape
    expanded = x[:, :, :, None, :].expand(bsz, seqlen, n_kv_heads, n_rep, head_dim)
    return expanded.reshape(bsz, seqlen, n_kv_heads * n_rep, head_dim)


class LayerKVCache:
    """Keys and values of one block, ``[batch, max_len, kv_heads, head_dim]``.

    ``length`` counts the valid positions. A write at ``start_pos`` must not leave a gap
    (``start_pos <= length``) and makes ``start_pos + T`` the new length, so rewinding to an
    earlier position is allowed and reading never sees stale positions.
    """

    def __init__(self, k: Tensor, v: Tensor) -> None:
        self.k = k
        self.v = v
        self.length = 0

    def update(self, start_pos: int, xk: Tensor, xv: Tensor) -> tuple[Tensor, Tensor]:
        """Store ``xk``/``xv`` at ``start_pos`` and return all keys/values up to its end."""
        bsz, seqlen = xk.shape[:2]
        end = start_pos + seqlen
        if start_pos > self.length:
            raise ValueError(
                f"KV cache holds {self.length} positions; cannot write at start_pos {start_pos}"
                " (a head skipped by return_all_heads=False has no cache for those positions)"
            )
        if end > self.k.shape[1] or bsz > self.k.shape[0]:
            raise ValueError(
                f"KV cache of batch {self.k.shape[0]} and length {self.k.shape[1]} cannot hold "
                f"batch {bsz} up to position {end}"
            )
        self.k[:bsz, start_pos:end] = xk
        self.v[:bsz, start_pos:end] = xv
        self.length = end
        return self.k[:bsz, :end].to(xk.dtype), self.v[:bsz, :end].to(xv.dtype)


class KVCache:
    """Per-block caches mirroring the module tree: ``layers[i]`` and ``extra_heads[j]``."""

    def __init__(self, layers: Sequence[LayerKVCache], extra_heads: Sequence[LayerKVCache]) -> None:
        self.layers = list(layers)
        self.extra_heads = list(extra_heads)

    @property
    def max_len(self) -> int:
        return self.layers[0].k.shape[1]


class RMSNorm(nn.Module):
    """Meta's RMSNorm: normalised in float32, cast back to the input dtype, then scaled."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class Attention(nn.Module):
    """Causal multi-head attention with GQA and interleaved RoPE (Meta key names)."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.n_heads = args.n_heads
        self.n_kv_heads = args.kv_heads
        self.head_dim = args.head_dim
        self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.kv_heads * args.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.kv_heads * args.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)

    def forward(
        self, x: Tensor, start_pos: int, freqs_cis: Tensor, cache: LayerKVCache | None = None
    ) -> Tensor:
        bsz, seqlen, _ = x.shape
        xq = self.wq(x).view(bsz, seqlen, self.n_heads, self.head_dim)
        xk = self.wk(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim)
        xv = self.wv(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim)
        xq, xk = apply_rotary_emb(xq, xk, freqs_cis)
        keys, values = (xk, xv) if cache is None else cache.update(start_pos, xk, xv)
        n_rep = self.n_heads // self.n_kv_heads
        q = xq.transpose(1, 2)
        k = repeat_kv(keys, n_rep).transpose(1, 2)
        v = repeat_kv(values, n_rep).transpose(1, 2)
        offset = k.shape[2] - seqlen
        if offset == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=seqlen > 1)
        elif seqlen == 1:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            query_pos = torch.arange(seqlen, device=x.device)[:, None] + offset
            mask = query_pos >= torch.arange(k.shape[2], device=x.device)[None, :]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.wo(out.transpose(1, 2).reshape(bsz, seqlen, -1))


class FeedForward(nn.Module):
    """SwiGLU ``w2(silu(w1 x) * w3 x)``."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    """Pre-norm Llama block; the unit of FSDP wrapping (see ``fsdp_wrap_policy``)."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, args.ffn_hidden_dim)
        self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)

    def forward(
        self, x: Tensor, start_pos: int, freqs_cis: Tensor, cache: LayerKVCache | None = None
    ) -> Tensor:
        h = x + self.attention(self.attention_norm(x), start_pos, freqs_cis, cache)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    """Meta's MTP Transformer; ``state_dict()`` is exactly ``expected_state_dict_shapes(args)``.

    ``freqs_cis`` is a non-persistent complex64 buffer derived from the args. It follows device
    moves, and every ``_apply`` (``.to``, ``.half()``, ``.cuda()``, ``to_empty``) rebuilds it as
    complex64 on the new device, so dtype casts of the module never truncate it and a model built
    under ``torch.device("meta")`` gets real values after ``to_empty(device=...)`` (it can also be
    rebuilt explicitly with ``reset_rope()``).
    """

    freqs_cis: Tensor

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_trunk_layers))
        self.extra_heads = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_extra_heads))
        self.norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        device = self.tok_embeddings.weight.device
        self.register_buffer("freqs_cis", _rope_table(args, device), persistent=False)

    def reset_rope(self) -> None:
        """Recompute ``freqs_cis`` (complex64) on the device it is on now."""
        self.freqs_cis = _rope_table(self.args, self.freqs_cis.device)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Transformer:
        # nn.Module._apply would cast the complex table with the parameters' float dtype (dropping
        # the imaginary part); a tiny float32 stand-in only tells which device ``fn`` moves to.
        table = self.freqs_cis
        self._buffers["freqs_cis"] = torch.empty(0, dtype=torch.float32, device=table.device)
        try:
            super()._apply(fn, recurse)
        except BaseException:
            self._buffers["freqs_cis"] = table
            raise
        self._buffers["freqs_cis"] = _rope_table(self.args, self._buffers["freqs_cis"].device)
        return self

    def prediction_heads(self) -> list[nn.Module]:
        """Head i predicts token t+1+i: ``[layers[-1], *extra_heads]``."""
        return [self.layers[-1], *self.extra_heads]

    def new_kv_cache(
        self,
        batch_size: int,
        max_len: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> KVCache:
        """Zeroed cache for incremental decoding; defaults to the parameters' device and dtype."""
        if not 0 < max_len <= self.freqs_cis.shape[0]:
            raise ValueError(f"max_len must be in 1..{self.freqs_cis.shape[0]}, got {max_len}")
        weight = self.tok_embeddings.weight
        shape = (batch_size, max_len, self.args.kv_heads, self.args.head_dim)

        def one() -> LayerKVCache:
            return LayerKVCache(
                torch.zeros(shape, device=device or weight.device, dtype=dtype or weight.dtype),
                torch.zeros(shape, device=device or weight.device, dtype=dtype or weight.dtype),
            )

        return KVCache(
            [one() for _ in range(self.args.n_trunk_layers)],
            [one() for _ in range(self.args.n_extra_heads)],
        )

    def forward(
        self,
        tokens: Tensor,
        start_pos: int = 0,
        return_all_heads: bool = True,
        kv_cache: KVCache | None = None,
    ) -> Tensor:
        """Float32 logits ``[B, T, n_heads_used, vocab]`` for ``tokens[B, T]`` at ``start_pos``.

        Without a cache, ``start_pos`` only offsets the RoPE positions. With ``kv_cache`` the
        tokens continue the cached sequence: chunked calls give the full forward's logits.
        """
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [batch, seq], got shape {list(tokens.shape)}")
        seqlen = tokens.shape[1]
        if start_pos < 0 or start_pos + seqlen > self.freqs_cis.shape[0]:
            raise ValueError(
                f"positions {start_pos}..{start_pos + seqlen - 1} exceed the RoPE table of "
                f"{self.freqs_cis.shape[0]} (2 * max_seq_len)"
            )
        h = self.tok_embeddings(tokens)
        freqs_cis = self.freqs_cis[start_pos : start_pos + seqlen].to(h.device)
        trunk_caches: list[LayerKVCache | None]
        head_caches: list[LayerKVCache | None]
        if kv_cache is None:
            trunk_caches = [None] * (len(self.layers) - 1)
            head_caches = [None] * self.args.n_future_tokens
        else:
            trunk_caches = list(kv_cache.layers[:-1])
            head_caches = [kv_cache.layers[-1], *kv_cache.extra_heads]
        for layer, cache in zip(self.layers[:-1], trunk_caches, strict=True):
            h = layer(h, start_pos, freqs_cis, cache)
        n_used = self.args.n_future_tokens if return_all_heads else 1
        latents = [
            head(h, start_pos, freqs_cis, cache)
            for head, cache in zip(self.prediction_heads()[:n_used], head_caches, strict=False)
        ]
        return self.output(self.norm(torch.stack(latents, dim=-2))).float()

    def load_meta_state_dict(
        self, state_dict: Mapping[str, Tensor], source: str = "state dict"
    ) -> None:
        """Strictly load Meta-named weights (cast to the parameters' dtype; ``rope.freqs`` dropped).

        Raises ``StateDictMismatchError`` before touching any parameter when keys or shapes differ.
        """
        weights = {key: value for key, value in state_dict.items() if key != ROPE_FREQS_KEY}
        check_state_dict(self.args, {key: value.shape for key, value in weights.items()}, source)
        self.load_state_dict(weights, strict=True, assign=False)

    def init_weights(self, seed: int, std: float = 0.02) -> None:
        """Deterministic init, bit-identical for a seed whatever the device.

        Parameters in sorted-name order: matrices get normal(0, std) drawn in float32 from a CPU
        generator seeded with ``seed``, norm weights get ones; values are then cast to each
        parameter's dtype and device. Works on FSDP2-sharded (DTensor) parameters too, where each
        rank keeps its shard of the same full values.
        """
        generator = torch.Generator(device="cpu").manual_seed(seed)
        with torch.no_grad():
            for name, param in sorted(self.named_parameters()):
                if param.is_meta:
                    raise ValueError(f"parameter {name} is on the meta device; to_empty() first")
                if param.dim() == 1:
                    value = torch.ones(param.shape, dtype=torch.float32, device="cpu")
                else:
                    value = torch.empty(param.shape, dtype=torch.float32, device="cpu")
                    value.normal_(0.0, std, generator=generator)
                param.copy_(_like_param(value, param))


def _like_param(value: Tensor, param: Tensor) -> Tensor:
    """``value`` (the full tensor) in the form ``param`` holds: its shard for an FSDP2 DTensor.

    Every rank draws the same full tensor, so each keeps its own shard without communication.
    """
    if torch.distributed.is_available():
        from torch.distributed.tensor import DTensor, distribute_tensor

        if isinstance(param, DTensor):
            return distribute_tensor(
                value.to(param.device), param.device_mesh, param.placements, src_data_rank=None
            )
    return value


def fsdp_wrap_policy() -> Callable[..., bool]:
    """FSDP1 ``auto_wrap_policy`` that makes every ``TransformerBlock`` its own FSDP unit.

    FSDP1::

        FullyShardedDataParallel(model, auto_wrap_policy=fsdp_wrap_policy(), ...)

    FSDP2 has no policy argument; shard the same units by hand, blocks first, then the root
    (which then holds the embeddings, the shared ``norm`` and ``output``)::

        for module in model.modules():
            if isinstance(module, TransformerBlock):
                fully_shard(module)
        fully_shard(model)

    Build big models under ``torch.device("meta")``, shard, then ``model.to_empty(device=...)``
    (which rebuilds ``freqs_cis``) and load or ``init_weights``.
    """
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    return functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={TransformerBlock})
