"""The optional KV cache of incremental decoding, owned by the caller (``new_kv_cache``)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


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
