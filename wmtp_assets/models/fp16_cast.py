"""Casting one checkpoint tensor to float16, with a range check that refuses inf/NaN.

Why a check: a bf16 or fp32 value with magnitude >= 65520 becomes ``inf`` in fp16 and NaN/Inf
would be stored silently (REFERENCE §4, §7); tiny values flush to zero. A conversion must fail
on the first, naming the file, the tensor and its largest magnitude, and report the second.

Cost: one ``torch.aminmax`` over the source (NaN propagates into it, so it also finds
non-finite values), the cast, and a ``count_nonzero`` of the result, plus one of the source
only when the result holds zeros. None of them allocates a temporary the size of the tensor
(unlike ``abs().max()`` or a boolean mask): the cast never turns zero into non-zero and the
range check rules out inf/NaN, so the flushed count is exactly the result's zeros minus the
source's, and a result without zeros had none flushed (at 7B_1T_4 the two counts took 14.5 s
of the converting thread's 56 s; the source's is two thirds of it). Memory is therefore bounded
without chunking; chunking these passes was measured slower on the 2-core machine (per-op
thread synchronisation), 4.8 s against 2.8 s for a 2.7 GB checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from pydantic import BaseModel, Field

from wmtp_assets.models.safetensors_writer import TensorSpec

FLOAT16_MAX = 65504.0
FLOAT16_ROUNDS_TO_INF = 65520.0
"""Round-to-nearest-even sends every magnitude at or above this to inf (65504 is the largest
finite fp16 value; magnitudes between the two round down to it)."""

_FLOAT_SOURCES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class Float16RangeError(ValueError):
    """A tensor that fp16 cannot hold: non-finite values or magnitudes that round to inf."""

    def __init__(self, source: Path | str, tensor: str, max_abs: float, reason: str) -> None:
        self.source = str(source)
        self.tensor = tensor
        self.max_abs = max_abs
        super().__init__(
            f"{source}: tensor {tensor!r} {reason}, largest finite magnitude {max_abs:g}; "
            f"float16 holds finite values up to {FLOAT16_MAX:g}"
        )


class CastStats(BaseModel):
    """One tensor's cast: what it was, its largest magnitude, how many values flushed to zero."""

    name: str
    source_dtype: str
    numel: int
    max_abs: float
    flushed_to_zero: int


class CastSummary(BaseModel):
    """All casts of a conversion, summed; ``flushed_by_tensor`` lists tensors with flushes."""

    n_tensors: int = 0
    n_params: int = 0
    max_abs: float = 0.0
    flushed_to_zero: int = 0
    flushed_by_tensor: dict[str, int] = Field(default_factory=dict)
    source_dtypes: dict[str, int] = Field(
        default_factory=dict, description="source dtype -> tensor count"
    )

    def add(self, stats: CastStats) -> None:
        self.n_tensors += 1
        self.n_params += stats.numel
        self.max_abs = max(self.max_abs, stats.max_abs)
        self.flushed_to_zero += stats.flushed_to_zero
        if stats.flushed_to_zero:
            self.flushed_by_tensor[stats.name] = stats.flushed_to_zero
        self.source_dtypes[stats.source_dtype] = self.source_dtypes.get(stats.source_dtype, 0) + 1


def cast_to_float16(
    name: str, tensor: torch.Tensor, source: Path | str, buffer: torch.Tensor | None = None
) -> tuple[torch.Tensor, CastStats]:
    """``tensor`` as float16 plus its stats; raises :class:`Float16RangeError` when it won't fit.

    An fp16 source is returned as is (checked for non-finite values). Non-float tensors are
    refused: a float16 artifact has no place for them. ``buffer``, a flat float16 tensor of at
    least ``tensor.numel()`` elements, receives the result instead of a new allocation (three
    times faster for large tensors: no fresh pages to fault in); the result then aliases it.
    """
    dtype_name = str(tensor.dtype).removeprefix("torch.")
    if tensor.dtype not in _FLOAT_SOURCES:
        raise TypeError(f"{source}: tensor {name!r} is {dtype_name}, not a float tensor")
    if tensor.numel() == 0:
        return tensor.to(torch.float16), CastStats(
            name=name, source_dtype=dtype_name, numel=0, max_abs=0.0, flushed_to_zero=0
        )
    low, high = torch.aminmax(tensor)
    if not (torch.isfinite(low) and torch.isfinite(high)):
        raise _non_finite(name, tensor, source)
    max_abs = max(-float(low), float(high))
    if max_abs >= FLOAT16_ROUNDS_TO_INF:
        raise Float16RangeError(source, name, max_abs, "has values that overflow to inf in float16")
    if tensor.dtype == torch.float16:
        return tensor, CastStats(
            name=name,
            source_dtype=dtype_name,
            numel=tensor.numel(),
            max_abs=max_abs,
            flushed_to_zero=0,
        )
    if buffer is None:
        result = tensor.to(torch.float16)
    else:
        result = buffer[: tensor.numel()].view(tensor.shape).copy_(tensor)
    # flushed = zeros after - zeros before; a zero stays zero, so with none after there was
    # none before, and the source (twice the bytes of the result) need not be counted
    zeros_after = tensor.numel() - int(torch.count_nonzero(result))
    flushed = zeros_after and zeros_after - (tensor.numel() - int(torch.count_nonzero(tensor)))
    return result, CastStats(
        name=name,
        source_dtype=dtype_name,
        numel=tensor.numel(),
        max_abs=max_abs,
        flushed_to_zero=flushed,
    )


def _non_finite(name: str, tensor: torch.Tensor, source: Path | str) -> Float16RangeError:
    """The error for a tensor with NaN/Inf (runs only on failure, so may allocate)."""
    finite = torch.isfinite(tensor)
    n_nan = int(torch.isnan(tensor).sum())
    n_inf = tensor.numel() - int(finite.sum()) - n_nan
    max_abs = float(tensor[finite].abs().max()) if bool(finite.any()) else float("nan")
    return Float16RangeError(
        source, name, max_abs, f"holds {n_nan} NaN and {n_inf} Inf values (of {tensor.numel()})"
    )


def require_float_sources(specs: Mapping[str, TensorSpec], source: Path | str) -> None:
    """Fail before anything is written when a tensor is not float (it cannot become fp16)."""
    not_float = {
        name: str(spec.dtype).removeprefix("torch.")
        for name, spec in specs.items()
        if spec.dtype not in _FLOAT_SOURCES
    }
    if not_float:
        raise TypeError(f"{source}: tensors that are not float cannot become float16: {not_float}")
