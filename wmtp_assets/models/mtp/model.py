"""Meta's multi-token-prediction Llama (``facebook/multi-token-prediction``) in plain PyTorch.

The contract is Meta's checkpoint: key names, shapes and the forward computation of the original
``llama/model.py`` of the MTP release (REFERENCE.md §1), so a ``consolidated.pth`` loads strictly
and gives Meta's logits. Unlike the original, it is trainable (no ``inference_mode``, no
fairscale layers), runs on any device and dtype, builds on the ``meta`` device and wraps per
block under FSDP. Every part (``TransformerBlock(args)`` with :func:`rope`, the embedding, the
shared ``norm`` and ``output``) also works alone, e.g. to run one block at a time.

``layers`` holds ``n_layers - n_future_tokens + 1`` blocks and ``extra_heads``
``n_future_tokens - 1``. The trunk is ``layers[:-1]``; the prediction heads
``[layers[-1], *extra_heads]`` each take the trunk output (in parallel, not chained). Head
outputs are stacked on dim -2 and go through one shared ``norm`` and ``output``: float32 logits
``[batch, seq, n_heads_used, vocab]``.

Deliberate differences from Meta's code, none changing the result beyond rounding:

- RoPE is applied in the real form of Meta's interleaved complex product (pair ``(x[2i],
  x[2i+1])`` turned by angle ``p * theta^(-2i/hd)``), in float32, with cos/sin computed per call
  from the args: no buffer, so a dtype cast of the module never rounds the table and a module
  built on ``meta`` needs nothing rebuilt; the cost is ``seq * head_dim`` cos/sin per forward;
- attention is ``F.scaled_dot_product_attention`` (GQA through ``enable_gqa``), which
  accumulates in float32 for half-precision inputs, at least as accurate as Meta's float32
  softmax over model-dtype scores;
- the KV cache is optional and owned by the caller (``Transformer.new_kv_cache``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmtp_assets.models.mtp.args import ModelArgs
from wmtp_assets.models.mtp.kv_cache import KVCache, LayerKVCache
from wmtp_assets.models.seeded_init import seeded_tensors
from wmtp_assets.models.shapes import meta_shapes, require_shapes

ROPE_FREQS_KEY = "rope.freqs"
"""Extra tensor some Meta Llama checkpoints carry; RoPE comes from the args, so it is dropped."""

Rope = tuple[Tensor, Tensor]
"""cos and sin, float32 ``[seq, head_dim / 2]``, for the positions of the current tokens."""


def rope(args: ModelArgs, start_pos: int, seqlen: int, device: torch.device | str) -> Rope:
    """Meta's rotation angles ``outer(positions, theta^(-arange(0, hd, 2)/hd))``, as cos/sin.

    Positions are limited to Meta's table, ``2 * max_seq_len``.
    """
    end = start_pos + seqlen
    if start_pos < 0 or end > 2 * args.max_seq_len:
        raise ValueError(
            f"positions {start_pos}..{end - 1} exceed the RoPE table of "
            f"{2 * args.max_seq_len} (2 * max_seq_len)"
        )
    hd = args.head_dim
    inv_freq = 1.0 / (args.rope_theta ** (torch.arange(0, hd, 2, device=device).float() / hd))
    positions = torch.arange(start_pos, end, device=device, dtype=torch.float32)
    angles = torch.outer(positions, inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs ``(x[2i], x[2i+1])`` of ``x[B, T, heads, hd]``; same dtype as ``x``."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    real, imag = pairs[..., 0], pairs[..., 1]
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    rotated = torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)


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
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.kv_heads, args.head_dim
        self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.kv_heads * args.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.kv_heads * args.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)

    def forward(
        self, x: Tensor, start_pos: int, rope: Rope, cache: LayerKVCache | None = None
    ) -> Tensor:
        bsz, seqlen, _ = x.shape
        xq = apply_rope(self.wq(x).view(bsz, seqlen, self.n_heads, self.head_dim), *rope)
        xk = apply_rope(self.wk(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim), *rope)
        xv = self.wv(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim)
        keys, values = (xk, xv) if cache is None else cache.update(start_pos, xk, xv)
        q, k, v = xq.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2)
        attend = functools.partial(F.scaled_dot_product_attention, q, k, v, enable_gqa=True)
        offset = k.shape[2] - seqlen
        if offset == 0:
            out = attend(is_causal=seqlen > 1)
        elif seqlen == 1:
            out = attend()
        else:  # a chunk after cached positions: query i sees keys up to offset + i
            query_pos = torch.arange(seqlen, device=x.device)[:, None] + offset
            out = attend(attn_mask=query_pos >= torch.arange(k.shape[2], device=x.device))
        result: Tensor = self.wo(out.transpose(1, 2).reshape(bsz, seqlen, -1))
        return result


class FeedForward(nn.Module):
    """SwiGLU ``w2(silu(w1 x) * w3 x)``."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        result: Tensor = self.w2(F.silu(self.w1(x)) * self.w3(x))
        return result


class TransformerBlock(nn.Module):
    """Pre-norm Llama block; the unit of FSDP wrapping (see ``fsdp_wrap_policy``).

    Its ``state_dict`` keys are a checkpoint's ``layers.{i}.*`` / ``extra_heads.{j}.*`` keys
    without the prefix, so one block loads and runs alone.
    """

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, args.ffn_hidden_dim)
        self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)

    def forward(
        self, x: Tensor, start_pos: int, rope: Rope, cache: LayerKVCache | None = None
    ) -> Tensor:
        h: Tensor = x + self.attention(self.attention_norm(x), start_pos, rope, cache)
        out: Tensor = h + self.feed_forward(self.ffn_norm(h))
        return out


class Transformer(nn.Module):
    """Meta's MTP Transformer; ``state_dict()`` is exactly ``meta_shapes(args)``."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_trunk_layers))
        self.extra_heads = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_extra_heads))
        self.norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)

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
        if not 0 < max_len <= 2 * self.args.max_seq_len:
            raise ValueError(f"max_len must be in 1..{2 * self.args.max_seq_len}, got {max_len}")
        weight = self.tok_embeddings.weight
        shape = (batch_size, max_len, self.args.kv_heads, self.args.head_dim)
        device, dtype = device or weight.device, dtype or weight.dtype

        def one() -> LayerKVCache:
            k, v = (torch.zeros(shape, device=device, dtype=dtype) for _ in range(2))
            return LayerKVCache(k, v)

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
        """Float32 logits ``[B, T, n_heads_used, vocab]`` for ``tokens[B, T]``.

        As in Meta's API, ``start_pos`` > 0 continues the sequence held in ``kv_cache`` (chunked
        calls give the full forward's logits); without a cache it is an error, never a silent
        shift of the RoPE positions.
        """
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [batch, seq], got shape {list(tokens.shape)}")
        if start_pos and kv_cache is None:
            raise ValueError(
                f"start_pos={start_pos} without a kv_cache: start_pos continues the sequence "
                "held in kv_cache (Meta's API); pass the cache, or start_pos=0"
            )
        h = self.tok_embeddings(tokens)
        angles = rope(self.args, start_pos, tokens.shape[1], h.device)
        trunk: Sequence[LayerKVCache | None] = [None] * (len(self.layers) - 1)
        heads: Sequence[LayerKVCache | None] = [None] * self.args.n_future_tokens
        if kv_cache is not None:
            trunk, heads = kv_cache.layers[:-1], [kv_cache.layers[-1], *kv_cache.extra_heads]
        for layer, cache in zip(self.layers[:-1], trunk, strict=True):
            h = layer(h, start_pos, angles, cache)
        n_used = self.args.n_future_tokens if return_all_heads else 1
        latents = [
            head(h, start_pos, angles, cache)
            for head, cache in zip(self.prediction_heads()[:n_used], heads, strict=False)
        ]
        logits: Tensor = self.output(self.norm(torch.stack(latents, dim=-2)))
        return logits.float()

    def load_meta_state_dict(
        self, state_dict: Mapping[str, Tensor], source: str = "state dict"
    ) -> None:
        """Strictly load Meta-named weights (cast to the parameters' dtype; ``rope.freqs`` dropped).

        Raises ``ShapeMismatchError`` before touching any parameter when keys or shapes differ.
        """
        weights = {key: value for key, value in state_dict.items() if key != ROPE_FREQS_KEY}
        found = {key: tuple(value.shape) for key, value in weights.items()}
        require_shapes(meta_shapes(self.args), found, source)
        self.load_state_dict(weights, strict=True, assign=False)

    def init_weights(self, seed: int, std: float = 0.02) -> None:
        """``seeded_init``'s values for the parameters, bit-identical for a seed on any device.

        Values are drawn one tensor at a time on CPU in float32, then cast to each parameter's
        dtype and device. Works on FSDP2-sharded (DTensor) parameters too: every rank draws the
        same full values and keeps its shard, without communication.
        """
        params = dict(self.named_parameters())
        for name, param in params.items():
            if param.is_meta:
                raise ValueError(f"parameter {name} is on the meta device; to_empty() first")
        with torch.no_grad():
            shapes = {name: tuple(param.shape) for name, param in params.items()}
            for name, value in seeded_tensors(shapes, seed, std):
                params[name].copy_(_like_param(value, params[name]))


def _like_param(value: Tensor, param: Tensor) -> Tensor:
    """``value`` (the full tensor) in the form ``param`` holds: its shard for an FSDP2 DTensor."""
    if torch.distributed.is_available():
        from torch.distributed.tensor import DTensor, distribute_tensor

        if isinstance(param, DTensor):
            return distribute_tensor(
                value.to(param.device), param.device_mesh, param.placements, src_data_rank=None
            )
    return value


def fsdp_wrap_policy() -> Callable[..., bool]:
    """FSDP1 ``auto_wrap_policy`` that makes every ``TransformerBlock`` its own FSDP unit.

    FSDP1: ``FullyShardedDataParallel(model, auto_wrap_policy=fsdp_wrap_policy(), ...)``.
    FSDP2 has no policy argument; shard the same units by hand, blocks first, then the root
    (which then holds the embeddings, the shared ``norm`` and ``output``)::

        for module in model.modules():
            if isinstance(module, TransformerBlock):
                fully_shard(module)
        fully_shard(model)

    Build big models under ``torch.device("meta")``, shard, ``model.to_empty(device=...)``,
    then load or ``init_weights``.
    """
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    return functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={TransformerBlock})
