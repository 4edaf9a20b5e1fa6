"""Casting checkpoint tensors to float16 with a range check, and streaming them into safetensors.

Why a check: a bf16 or fp32 value with magnitude >= 65520 becomes ``inf`` in fp16 and NaN/Inf
would be stored silently (REFERENCE §4, §7); tiny values flush to zero. A conversion must fail
on the first, naming the file, the tensor and its largest magnitude, and report the second.

Cost: one ``torch.aminmax`` over the source (NaN propagates into it, so it also finds
non-finite values), the cast, and two ``count_nonzero`` reductions (source and result). None of
them allocates a temporary the size of the tensor (unlike ``abs().max()`` or a boolean mask):
the cast never turns zero into non-zero and the range check rules out inf/NaN, so the flushed
count is exactly ``count_nonzero(source) - count_nonzero(result)``. Memory is therefore bounded
without chunking; chunking these passes was measured slower on the 2-core machine (per-op
thread synchronisation), 4.8 s against 2.8 s for a 2.7 GB checkpoint.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from pydantic import BaseModel, Field

from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.artifact import publish_weights
from wmtp_assets.models.checkpoint_reader import LazyCheckpoint
from wmtp_assets.models.safetensors_writer import TensorSpec, WriteResult, stage_safetensors

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
    flushed = int(torch.count_nonzero(tensor)) - int(torch.count_nonzero(result))
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


class Float16Weights(BaseModel):
    """A staged fp16 safetensors file (not yet published) and what writing it took."""

    staged: WriteResult
    cast: CastSummary
    seconds: float
    bytes_per_s: float


def stage_float16_weights(
    checkpoint: LazyCheckpoint,
    names: Sequence[str],
    dest: Path,
    metadata: Mapping[str, str],
    progress: Callable[[str], None] | None = None,
) -> Float16Weights:
    """Stream ``names`` from ``checkpoint`` through the fp16 cast into a staged file for ``dest``.

    Holds one converted tensor at a time (in one reused buffer); each source tensor's mapped
    pages are released once its bytes are written. On any error (range check, write failure)
    the staged file is gone. The caller publishes ``staged.path`` (``publish_weights``).
    """
    sources = {name: checkpoint.spec(name) for name in names}
    specs = {name: TensorSpec(dtype=torch.float16, shape=s.shape) for name, s in sources.items()}
    total = sum(spec.nbytes for spec in specs.values())
    # One output buffer for all casts: the writer is done with a tensor before asking for the
    # next, so this is the only converted tensor in memory (the largest one's size).
    largest = max(
        (torch.Size(s.shape).numel() for s in sources.values() if s.dtype != torch.float16),
        default=0,
    )
    buffer = torch.empty(largest, dtype=torch.float16)
    summary = CastSummary()
    held: dict[str, torch.Tensor] = {}
    start = time.monotonic()

    def produce(name: str) -> torch.Tensor:
        held[name] = checkpoint.get(name)
        result, stats = cast_to_float16(name, held[name], checkpoint.source_of(name), buffer)
        summary.add(stats)
        return result

    def written(name: str, so_far: int) -> None:
        checkpoint.release(held.pop(name), name)
        if progress is not None:
            rate = so_far / max(time.monotonic() - start, 1e-9) / 1e6
            progress(
                f"tensor {summary.n_tensors}/{len(specs)} {name} {tuple(specs[name].shape)}: "
                f"{so_far / 1e6:.1f}/{total / 1e6:.1f} MB written, {rate:.0f} MB/s"
            )

    staged = stage_safetensors(dest, specs, produce, metadata, on_written=written)
    seconds = time.monotonic() - start
    return Float16Weights(
        staged=staged, cast=summary, seconds=seconds, bytes_per_s=staged.size / max(seconds, 1e-9)
    )


def publish_float16_weights(weights: Float16Weights, dirs: ModelDirs) -> None:
    """Publish staged weights (``publish_weights``' order), first removing ``metadata.json``.

    Until the new metadata is written the artifact then reads as incomplete, so a crash between
    the weights and the configs never leaves old metadata describing new weights. On failure
    the staged file is removed.
    """
    try:
        with contextlib.suppress(FileNotFoundError):
            dirs.metadata.unlink()
        publish_weights(weights.staged.path, dirs, weights.staged.sha256)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            weights.staged.path.unlink()
        raise


class ConversionReport(BaseModel):
    """What a conversion wrote, for asset metadata and logs."""

    weights: Path
    n_tensors: int
    n_params: int
    sha256: str
    size: int
    dtype: str = Field(description="dtype read back from the written header")
    flushed_to_zero: int
    flushed_by_tensor: dict[str, int]
    source_dtypes: dict[str, int]
    dropped_keys: list[str]
    seconds: float = Field(description="wall time of the whole conversion")
    bytes_per_s: float = Field(description="weights bytes written per second of wall time")

    @classmethod
    def fields_from(
        cls,
        weights: Float16Weights,
        dirs: ModelDirs,
        dtype: str,
        dropped: list[str],
        started: float,
    ) -> dict[str, object]:
        """The report's fields for ``weights`` published into ``dirs``; ``started`` is monotonic."""
        seconds = time.monotonic() - started
        return {
            "weights": dirs.weights,
            "n_tensors": weights.staged.n_tensors,
            "n_params": weights.cast.n_params,
            "sha256": weights.staged.sha256,
            "size": weights.staged.size,
            "dtype": dtype,
            "flushed_to_zero": weights.cast.flushed_to_zero,
            "flushed_by_tensor": weights.cast.flushed_by_tensor,
            "source_dtypes": weights.cast.source_dtypes,
            "dropped_keys": dropped,
            "seconds": seconds,
            "bytes_per_s": weights.staged.size / max(seconds, 1e-9),
        }
