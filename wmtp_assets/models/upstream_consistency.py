"""Upstream files held to each other: the config a repo publishes against its checkpoint and
tokenizer (no Dagster).

Why: the shapes check proves a checkpoint has the tensors a config implies, but several config
fields leave no trace in the shapes (``rope_theta``; ``n_heads`` where ``wq`` is square), and a
config that states another model's values still converts. Where the checkpoint carries its own
evidence it is used: Meta's ``rope.freqs`` and old HF files' ``*.rotary_emb.inv_freq`` are
``1 / theta^(2i/head_dim)`` (``i < head_dim/2``), so their length gives ``head_dim`` (so
``n_heads``) and their values ``theta``. Dimensions, layer counts and the vocabulary are read
from tensor shapes (headers only), the vocabulary also from the tokenizer's piece count.

Contract: only shapes and the small RoPE tensors are read (a 27 GB checkpoint costs its pickle
and a few KB); every contradiction names the file, the field, what the file states and what the
evidence implies; :class:`UpstreamContradictionError` (a ``ValueError``) carries them all.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from wmtp_assets.models.checkpoint_reader import LazyCheckpoint
from wmtp_assets.models.mtp.model import ROPE_FREQS_KEY

DEFAULT_ROPE_THETA = 10000.0
"""Llama's ``theta`` where a config does not state one (REFERENCE §2: Sheared-LLaMA)."""
_RELATIVE_TOLERANCE = 1e-2
"""RoPE frequencies may be stored in bfloat16 (8 bits of mantissa: 0.4 % per value); another
``theta`` moves all but the first by far more (10000 vs 500000: up to 98 %)."""

_META_BLOCK = "attention.wq.weight"


class Contradiction(BaseModel):
    """One field of ``file`` that its evidence (a tensor, the tokenizer) contradicts."""

    file: str
    field: str
    stated: Any
    implied: Any
    evidence: str

    @property
    def message(self) -> str:
        return (
            f"{self.file}: {self.field} is {self.stated!r} but {self.evidence} "
            f"implies {self.implied!r}"
        )


class UpstreamContradictionError(ValueError):
    """Upstream files that contradict each other; the message is the first, all are kept."""

    def __init__(self, contradictions: list[Contradiction]) -> None:
        self.contradictions = contradictions
        first = contradictions[0]
        # for a step's failure metadata (defs.explain): the file, what the evidence implies,
        # what the file states
        self.file, self.expected, self.found = first.file, first.implied, first.stated
        more = f" (and {len(contradictions) - 1} more)" if len(contradictions) > 1 else ""
        super().__init__(contradictions[0].message + more)


def require_consistent(contradictions: list[Contradiction]) -> None:
    """Raise :class:`UpstreamContradictionError` unless ``contradictions`` is empty."""
    if contradictions:
        raise UpstreamContradictionError(contradictions)


def rope_theta_implied(freqs: torch.Tensor) -> float:
    """The ``theta`` of ``freqs = 1/theta^(2i/head_dim)``, from its last value (the most
    sensitive one): ``theta = freqs[-1]^(-head_dim / (2 (n-1)))`` with ``head_dim = 2n``."""
    values = freqs.detach().to(torch.float64).flatten()
    n = values.numel()
    if n < 2 or not bool(torch.isfinite(values).all()) or float(values[-1]) <= 0:
        return float("nan")
    return float(math.exp(-math.log(float(values[-1])) * n / (n - 1)))


def rope_contradictions(
    freqs: torch.Tensor, theta: float, head_dim: int, file: str, evidence: str
) -> list[Contradiction]:
    """``head_dim`` and ``theta`` as stated in ``file`` against a stored frequency tensor."""
    found: list[Contradiction] = []
    if freqs.dim() != 1 or 2 * freqs.numel() != head_dim:
        found.append(
            Contradiction(
                file=file,
                field="head_dim (dim / n_heads)",
                stated=head_dim,
                implied=2 * freqs.numel() if freqs.dim() == 1 else list(freqs.shape),
                evidence=f"{evidence} of shape {list(freqs.shape)}",
            )
        )
        return found
    values = freqs.detach().to(torch.float64)
    expected = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    if not torch.allclose(values, expected, rtol=_RELATIVE_TOLERANCE, atol=0.0):
        implied = rope_theta_implied(values)
        found.append(
            Contradiction(
                file=file,
                field="rope_theta",
                stated=theta,
                implied=float(f"{implied:.6g}") if math.isfinite(implied) else "no theta",
                evidence=evidence,
            )
        )
    return found


def _read_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON object ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _shape(checkpoint: LazyCheckpoint, name: str) -> tuple[int, ...] | None:
    return tuple(checkpoint.spec(name).shape) if name in checkpoint.names else None


def _count(names: list[str], prefix: str, suffix: str) -> int:
    """How many blocks ``<prefix>.<i>.<suffix>`` the checkpoint has (a stray tensor under the
    prefix is the shapes check's to name, not a block)."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.{re.escape(suffix)}$")
    return len({m.group(1) for n in names if (m := pattern.match(n))})


def _stated(
    file: str, stated: Mapping[str, Any], implied: Mapping[str, tuple[Any, str]]
) -> list[Contradiction]:
    """Each field of ``stated`` that its ``implied`` (value, evidence) contradicts."""
    return [
        Contradiction(file=file, field=field, stated=stated[field], implied=value, evidence=why)
        for field, (value, why) in implied.items()
        if field in stated and value is not None and stated[field] != value
    ]


def meta_contradictions(
    params_path: Path, checkpoint: LazyCheckpoint, tokenizer_vocab: int
) -> list[Contradiction]:
    """Meta's ``params.json`` against ``consolidated.pth`` and the tokenizer's piece count."""
    params = _read_object(params_path)
    file, names, ckpt = str(params_path), checkpoint.names, checkpoint.files[0].name
    embeddings = _shape(checkpoint, "tok_embeddings.weight")
    stated = dict(params)
    if stated.get("vocab_size") == -1:  # Llama-2 convention: the tokenizer's
        stated["vocab_size"] = tokenizer_vocab
    trunk = _count(names, "layers", _META_BLOCK)
    extra = _count(names, "extra_heads", _META_BLOCK)
    implied: dict[str, tuple[Any, str]] = {
        "n_layers": (trunk + extra or None, f"{ckpt} ({trunk} layers + {extra} extra_heads)"),
        "n_future_tokens": (extra + 1 if trunk else None, f"{ckpt} ({extra} extra_heads)"),
    }
    if embeddings is not None and len(embeddings) == 2:
        where = f"{ckpt} tok_embeddings.weight {list(embeddings)}"
        implied |= {"dim": (embeddings[1], where), "vocab_size": (embeddings[0], where)}
    found = _stated(file, stated, implied)
    if params.get("vocab_size") not in (-1, None) and params["vocab_size"] != tokenizer_vocab:
        found.append(
            Contradiction(
                file=file,
                field="vocab_size",
                stated=params["vocab_size"],
                implied=tokenizer_vocab,
                evidence="tokenizer.model's piece count",
            )
        )
    dim, heads = params.get("dim"), params.get("n_heads")
    if ROPE_FREQS_KEY in names and isinstance(dim, int) and isinstance(heads, int) and heads > 0:
        theta = float(params.get("rope_theta", DEFAULT_ROPE_THETA))
        freqs = checkpoint.get(ROPE_FREQS_KEY)
        found += rope_contradictions(freqs, theta, dim // heads, file, f"{ckpt} {ROPE_FREQS_KEY}")
    return found


def hf_llama_contradictions(
    config_path: Path, checkpoint: LazyCheckpoint, tokenizer_vocab: int
) -> list[Contradiction]:
    """An HF Llama ``config.json`` against its shards (headers, and ``inv_freq`` buffers where
    old transformers saved them) and the tokenizer's piece count."""
    config = _read_object(config_path)
    file, names = str(config_path), checkpoint.names
    embeddings = _shape(checkpoint, "model.embed_tokens.weight")
    gate = _shape(checkpoint, "model.layers.0.mlp.gate_proj.weight")
    layers = _count(names, "model.layers", "self_attn.q_proj.weight")
    implied: dict[str, tuple[Any, str]] = {
        "num_hidden_layers": (layers or None, f"the shards ({layers} model.layers)"),
    }
    if embeddings is not None and len(embeddings) == 2:
        where = f"model.embed_tokens.weight {list(embeddings)}"
        implied |= {"hidden_size": (embeddings[1], where), "vocab_size": (embeddings[0], where)}
    if gate is not None:
        implied["intermediate_size"] = (
            gate[0],
            f"model.layers.0.mlp.gate_proj.weight {list(gate)}",
        )
    found = _stated(file, config, implied)
    if config.get("vocab_size") != tokenizer_vocab:
        found.append(
            Contradiction(
                file=file,
                field="vocab_size",
                stated=config.get("vocab_size"),
                implied=tokenizer_vocab,
                evidence="tokenizer.model's piece count",
            )
        )
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    inv_freq = sorted(n for n in names if n.endswith(".rotary_emb.inv_freq"))
    if inv_freq and isinstance(hidden, int) and isinstance(heads, int) and heads > 0:
        head_dim = config.get("head_dim") or hidden // heads
        theta = float(config.get("rope_theta") or DEFAULT_ROPE_THETA)
        freqs = checkpoint.get(inv_freq[0])
        found += rope_contradictions(freqs, theta, head_dim, file, inv_freq[0])
    return found
