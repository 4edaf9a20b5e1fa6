"""Hyperparameters of the MTP Transformer (Meta's names) and the two files they are read from.

``ModelArgs`` is a frozen dataclass checked on construction: strict types (``"4096"`` or
``true`` is not an int), positive sizes and a consistent shape. ``n_kv_heads`` left at None is
stored as ``n_heads``, so two args describing the same model compare equal whatever file they
came from. The readers (``from_params_json``, ``from_hf_config``) map a file's spelling onto
the fields and raise ``ModelArgsError`` naming every bad field (as the file spells it) and the
file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


class ModelArgsError(ValueError):
    """Invalid or contradictory hyperparameters: ``problems`` pairs each field with what is wrong,
    ``source`` names the file (None for direct construction)."""

    def __init__(self, problems: Sequence[tuple[str, str]], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        details = "; ".join(f"field '{field}': {message}" for field, message in self.problems)
        super().__init__(f"invalid model args{where}: {details}")


_INT_FIELDS = ("dim", "n_layers", "n_heads", "vocab_size", "multiple_of", "n_future_tokens")
_FLOAT_FIELDS = ("norm_eps", "rope_theta")


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_number(value: object) -> bool:
    return type(value) in (int, float)


@dataclass(frozen=True)
class ModelArgs:
    """Meta's ``params.json`` fields; see the module docstring for the checks."""

    dim: int
    n_layers: int
    n_heads: int
    vocab_size: int
    n_kv_heads: int | None = None
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    n_future_tokens: int = 1
    max_seq_len: int = 2048

    def __post_init__(self) -> None:
        problems = self._field_problems() or self._shape_problems()
        if problems:
            raise ModelArgsError(problems)
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        for name in _FLOAT_FIELDS:
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.ffn_dim_multiplier is not None:
            object.__setattr__(self, "ffn_dim_multiplier", float(self.ffn_dim_multiplier))

    def _field_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for field in fields(self):
            value = getattr(self, field.name)
            optional = field.name in ("n_kv_heads", "ffn_dim_multiplier")
            if value is None and optional:
                continue
            wants_int = field.name in (*_INT_FIELDS, "n_kv_heads", "max_seq_len")
            if not (_is_int(value) if wants_int else _is_number(value)):
                kind = "an integer" if wants_int else "a number"
                problems.append((field.name, f"must be {kind}, got {value!r}"))
            elif value <= 0:
                problems.append((field.name, f"must be greater than 0, got {value!r}"))
        return problems

    def _shape_problems(self) -> list[tuple[str, str]]:
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
                ("n_kv_heads", f"must divide n_heads ({self.n_heads}), got {self.kv_heads}")
            )
        return problems

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
    def from_params_json(
        cls, path: str | os.PathLike[str], vocab_size: int | None = None
    ) -> ModelArgs:
        """Read Meta's ``params.json`` (also the plan's aliases for norm_eps and max_seq_len).

        ``vocab_size`` is the tokenizer's: it fills a file's ``"vocab_size": -1`` (Llama-2
        convention) and must agree with an explicit value. ``max_batch_size`` is inference-only and
        ignored. Unknown keys, contradictory aliases and bad types are errors naming the file.
        """
        source = str(path)
        data = _read_json_object(Path(path))
        known = {f.name for f in fields(cls)} | set(_META_ALIASES) | _META_IGNORED
        _refuse_unknown(data, known, source)
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
        if _is_int(file_vocab) and file_vocab == -1:
            if vocab_size is None:
                problems.append(
                    (
                        "vocab_size",
                        "is -1 (take it from the tokenizer) but no vocab_size argument was given",
                    )
                )
            data["vocab_size"] = vocab_size
        elif vocab_size is not None and "vocab_size" in data and file_vocab != vocab_size:
            problems.append(
                ("vocab_size", f"file says {file_vocab!r} but the tokenizer has {vocab_size}")
            )
        if problems:
            raise ModelArgsError(problems, source)
        fields_ = {k: v for k, v in data.items() if k not in _META_IGNORED}
        return _build(fields_, source, {})

    @classmethod
    def from_hf_config(cls, config: str | os.PathLike[str] | Mapping[str, Any]) -> ModelArgs:
        """Read an HF-style ``config.json`` (path or already-parsed mapping).

        Informational HF keys are tolerated; keys that would change the computation must hold the
        value this architecture implies (``hidden_act`` "silu", untied embeddings, no biases, no
        rope scaling, no attention dropout, ``head_dim`` = dim / n_heads, ``intermediate_size`` =
        the rounding rule's width). Anything else is an error naming the key and the source.
        """
        if isinstance(config, Mapping):
            source, raw = "HF config (mapping)", dict(config)
        else:
            source, raw = str(config), _read_json_object(Path(config))
        known = set(_HF_TO_FIELD) | _HF_INFORMATIONAL | set(_HF_REQUIRED_VALUES) | _HF_DERIVED
        _refuse_unknown(raw, known, source)
        problems = [
            (key, f"must be {expected!r} for this architecture, got {raw[key]!r}")
            for key, expected in _HF_REQUIRED_VALUES.items()
            if key in raw and not _same_value(raw[key], expected)
        ]
        if problems:
            raise ModelArgsError(problems, source)
        data = {field: raw[key] for key, field in _HF_TO_FIELD.items() if key in raw}
        args = _build(data, source, {field: key for key, field in _HF_TO_FIELD.items()})
        derived = {"intermediate_size": args.ffn_hidden_dim, "head_dim": args.head_dim}
        for key, expected in derived.items():
            value = raw.get(key)
            if value is not None and (not _is_int(value) or value != expected):
                problems.append(
                    (key, f"file says {value!r} but the args imply {expected} (dim {args.dim})")
                )
        if problems:
            raise ModelArgsError(problems, source)
        return args

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


_REQUIRED = ("dim", "n_layers", "n_heads", "vocab_size")
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


def _build(data: dict[str, Any], source: str, spelling: Mapping[str, str]) -> ModelArgs:
    """``ModelArgs(**data)``, with errors attributed to ``source`` in the file's ``spelling``."""
    missing = [(spelling.get(f, f), "required, but missing") for f in _REQUIRED if f not in data]
    if missing:
        raise ModelArgsError(missing, source)
    try:
        return ModelArgs(**data)
    except ModelArgsError as exc:
        renamed = [(spelling.get(field, field), message) for field, message in exc.problems]
        raise ModelArgsError(renamed, source) from None


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


def _refuse_unknown(data: Mapping[str, Any], known: set[str], source: str) -> None:
    unknown = sorted(key for key in data if key not in known)
    if unknown:
        raise ModelArgsError([(key, "unknown key") for key in unknown], source)


def _same_value(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or expected is None:
        return value is expected
    return bool(value == expected)
