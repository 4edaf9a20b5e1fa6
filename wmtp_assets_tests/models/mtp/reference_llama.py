"""A deliberately plain re-derivation of Meta's MTP Llama forward, used only as a test oracle.

It shares no code with ``wmtp_assets.models.mtp.model``: it reads a dict of tensors with Meta's
key names, computes everything in float32 with explicit loops over attention heads, a
materialised causal mask, RoPE through ``torch.view_as_complex`` and the RMSNorm/SwiGLU
formulas, and feeds the trunk output to every prediction head. Slow, and meant to be obvious.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ReferenceConfig:
    """The hyperparameters the forward needs (Meta's names)."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    n_future_tokens: int
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    mean_square = (x * x).mean(dim=-1, keepdim=True)
    return x / torch.sqrt(mean_square + eps) * weight


def rope_rotate(x: Tensor, positions: Tensor, theta: float) -> Tensor:
    """Rotate ``x[T, hd]`` pairwise: pair i of the row at position p turns by p * theta^(-2i/hd)."""
    head_dim = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
    angles = positions.float()[:, None] * inv_freq[None, :]
    rotation = torch.complex(torch.cos(angles), torch.sin(angles))
    pairs = torch.view_as_complex(x.reshape(x.shape[0], head_dim // 2, 2).contiguous())
    return torch.view_as_real(pairs * rotation).reshape(x.shape[0], head_dim)


def attention(
    x: Tensor, w: Mapping[str, Tensor], prefix: str, cfg: ReferenceConfig, start_pos: int
) -> Tensor:
    """Causal attention over one sequence ``x[T, dim]``, one head at a time."""
    seqlen, dim = x.shape
    head_dim = dim // cfg.n_heads
    q = x @ w[f"{prefix}.attention.wq.weight"].T
    k = x @ w[f"{prefix}.attention.wk.weight"].T
    v = x @ w[f"{prefix}.attention.wv.weight"].T
    positions = torch.arange(start_pos, start_pos + seqlen)
    mask = torch.triu(torch.full((seqlen, seqlen), float("-inf")), diagonal=1)
    group = cfg.n_heads // cfg.n_kv_heads
    outputs = []
    for head in range(cfg.n_heads):
        kv_head = head // group
        q_h = rope_rotate(q[:, head * head_dim : (head + 1) * head_dim], positions, cfg.rope_theta)
        k_h = rope_rotate(
            k[:, kv_head * head_dim : (kv_head + 1) * head_dim], positions, cfg.rope_theta
        )
        v_h = v[:, kv_head * head_dim : (kv_head + 1) * head_dim]
        scores = q_h @ k_h.T / math.sqrt(head_dim) + mask
        probs = torch.softmax(scores.float(), dim=-1)
        outputs.append(probs @ v_h)
    return torch.cat(outputs, dim=-1) @ w[f"{prefix}.attention.wo.weight"].T


def feed_forward(x: Tensor, w: Mapping[str, Tensor], prefix: str) -> Tensor:
    gate = x @ w[f"{prefix}.feed_forward.w1.weight"].T
    up = x @ w[f"{prefix}.feed_forward.w3.weight"].T
    return (gate * torch.sigmoid(gate) * up) @ w[f"{prefix}.feed_forward.w2.weight"].T


def block(
    x: Tensor, w: Mapping[str, Tensor], prefix: str, cfg: ReferenceConfig, start_pos: int
) -> Tensor:
    h = x + attention(
        rms_norm(x, w[f"{prefix}.attention_norm.weight"], cfg.norm_eps), w, prefix, cfg, start_pos
    )
    return h + feed_forward(rms_norm(h, w[f"{prefix}.ffn_norm.weight"], cfg.norm_eps), w, prefix)


def reference_forward(
    weights: Mapping[str, Tensor],
    cfg: ReferenceConfig,
    tokens: Tensor,
    start_pos: int = 0,
    return_all_heads: bool = True,
) -> Tensor:
    """Float32 logits ``[B, T, n_heads_used, vocab]`` of the MTP model held in ``weights``."""
    w = {name: tensor.detach().float().cpu() for name, tensor in weights.items()}
    n_layers_list = cfg.n_layers - cfg.n_future_tokens + 1
    head_prefixes = [f"layers.{n_layers_list - 1}"]
    head_prefixes += [f"extra_heads.{j}" for j in range(cfg.n_future_tokens - 1)]
    if not return_all_heads:
        head_prefixes = head_prefixes[:1]
    batch = []
    for sequence in tokens.cpu():
        h = w["tok_embeddings.weight"][sequence]
        for i in range(n_layers_list - 1):
            h = block(h, w, f"layers.{i}", cfg, start_pos)
        per_head = []
        for prefix in head_prefixes:
            out = block(h, w, prefix, cfg, start_pos)
            out = rms_norm(out, w["norm.weight"], cfg.norm_eps)
            per_head.append(out @ w["output.weight"].T)
        batch.append(torch.stack(per_head, dim=1))
    return torch.stack(batch, dim=0)
