"""The one path every checkpoint format takes to a float16 v2 artifact.

A format module (``convert_meta``, ``convert_hf_llama``) reads its configs into a
:class:`Float16Plan` (the expected tensors, what to drop, the configs to write, its entries of
``metadata.json``) and hands it to :func:`convert_to_float16`, which does the rest the same way
for every format, holding the artifact's lock throughout:

1. up to date? With ``reuse_current``, an artifact whose ``metadata.json`` records the same
   raw-file SHA256s and code version is left untouched (``current_metadata``);
2. sweep temporary files of interrupted runs, open the checkpoint without reading tensor
   bytes, check names and shapes against the plan and every tensor being float, all BEFORE
   writing anything;
3. stream every tensor through the range-checked cast (``fp16_cast``) into a staged
   ``safetensors/model.safetensors``, one converted tensor in memory at a time;
4. publish (``publish_float16_weights``: the previous good weights stay until the new ones are
   complete and fsynced), then the format's configs, then ``metadata.json``.

A forced rewrite of the same input produces identical bytes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field

from wmtp_assets.files.atomic import sweep_stale_tmp
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.files.lock import artifact_lock
from wmtp_assets.models.artifact import (
    ModelMetadata,
    SourceInfo,
    TokenizerInfo,
    current_metadata,
    provenance_fields,
    publish_weights,
    write_metadata,
)
from wmtp_assets.models.checkpoint_reader import LazyCheckpoint, open_checkpoint
from wmtp_assets.models.fp16_cast import CastSummary, cast_to_float16, require_float_sources
from wmtp_assets.models.safetensors_writer import TensorSpec, WriteResult, stage_safetensors
from wmtp_assets.models.shapes import Shapes, require_shapes
from wmtp_assets.sources import SourceError, read_provenance

Progress = Callable[[str], None]
WEIGHTS = "safetensors/model.safetensors"


@dataclass(frozen=True)
class Float16Plan:
    """What one source format decides; everything else in a conversion is shared.

    ``checkpoint`` is the file or folder errors name; ``open`` opens it lazily;
    ``expected`` is what ``against`` (a config file) implies; ``is_dropped`` picks the tensors
    that are not weights (``rope.freqs``, ``inv_freq``); ``write_configs(dtype)`` writes the
    format's configs after the weights are published; ``folders`` are the output folders
    besides ``safetensors/`` this format writes (swept of stale temporary files); the rest are
    ``metadata.json`` fields.
    """

    model_name: str
    implementation: Literal["pure_pytorch", "hf_llama"]
    checkpoint: Path
    open: Callable[[Progress | None], LazyCheckpoint]
    expected: Shapes
    against: str
    is_dropped: Callable[[str], bool]
    write_configs: Callable[[str], None]
    folders: Sequence[Path]
    source: SourceInfo
    tokenizer: TokenizerInfo
    safetensors: Mapping[str, Any]
    distributed: Mapping[str, Any] = field(default_factory=dict)
    tokenizer_shared_with: str | None = None


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


class Float16Outcome(BaseModel):
    """A conversion's result: converted (with its report) or found up to date (no report)."""

    status: Literal["converted", "up to date (not rewritten)"]
    metadata: ModelMetadata
    source: SourceInfo = Field(description="what raw/ holds now")
    report: ConversionReport | None = None


def raw_provenance(raw_dir: Path) -> dict[str, Any]:
    """The ``SourceInfo`` fields (all but the architecture) of ``raw_dir/SOURCE.json``."""
    provenance = read_provenance(raw_dir)
    if provenance is None:
        raise SourceError(f"{raw_dir}: no SOURCE.json; materialize the raw asset first")
    return provenance_fields(provenance)


def source_info(architecture: str, provenance: Mapping[str, Any] | None) -> SourceInfo:
    """The ``SourceInfo`` of ``architecture`` from ``raw_provenance``'s fields (None: a
    ``generated`` source, e.g. a checkpoint made by a test)."""
    return SourceInfo.model_validate(
        {"architecture": architecture, "kind": "generated", **(provenance or {})}
    )


def convert_to_float16(
    plan: Float16Plan,
    dirs: ModelDirs,
    code_version: str,
    progress: Progress | None = None,
    *,
    reuse_current: bool = False,
    lock_timeout_s: float = 60.0,
) -> Float16Outcome:
    """Convert ``plan`` into ``dirs`` (see the module docstring) or find it up to date.

    Waits up to ``lock_timeout_s`` for a concurrent conversion of the same artifact, then
    raises ``ArtifactLockedError``.
    """
    started = time.monotonic()
    with artifact_lock(dirs.root, timeout_s=lock_timeout_s):
        current = current_metadata(dirs, plan.source.files, code_version) if reuse_current else None
        if current is not None:
            if progress is not None:
                progress(f"{dirs.weights} is current: same raw SHA256s and code version")
            return Float16Outcome(
                status="up to date (not rewritten)", metadata=current, source=plan.source
            )
        for folder in (dirs.root, dirs.safetensors, *plan.folders):
            sweep_stale_tmp(folder)
        with plan.open(progress) as checkpoint:
            dropped = [n for n in checkpoint.names if plan.is_dropped(n)]
            names = [n for n in checkpoint.names if not plan.is_dropped(n)]
            specs = {n: checkpoint.spec(n) for n in names}
            files = {n: checkpoint.source_of(n).name for n in names}
            require_shapes(
                plan.expected,
                {n: s.shape for n, s in specs.items()},
                str(plan.checkpoint),
                plan.against,
                files if len(checkpoint.files) > 1 else None,
            )
            require_float_sources(specs, plan.checkpoint)
            source_files = sorted(p.name for p in checkpoint.files)
            weights = stage_float16_weights(
                checkpoint, names, dirs.weights, {"format": "pt"}, progress
            )
        publish_float16_weights(weights, dirs)
        dtype = stored_dtype(dirs.weights)
        plan.write_configs(dtype)
        metadata = write_metadata(
            dirs,
            {WEIGHTS: weights.staged.sha256},
            model_name=plan.model_name,
            implementation=plan.implementation,
            n_params=weights.cast.n_params,
            dtype=dtype,
            source=plan.source,
            safetensors={
                **plan.safetensors,
                "dropped_keys": dropped,
                "flushed_to_zero": weights.cast.flushed_to_zero,
                "source_files": source_files,
            },
            distributed=dict(plan.distributed),
            tokenizer=plan.tokenizer,
            tokenizer_shared_with=plan.tokenizer_shared_with,
            code_version=code_version,
        )
    seconds = time.monotonic() - started
    report = ConversionReport(
        weights=dirs.weights,
        n_tensors=weights.staged.n_tensors,
        n_params=weights.cast.n_params,
        sha256=weights.staged.sha256,
        size=weights.staged.size,
        dtype=dtype,
        flushed_to_zero=weights.cast.flushed_to_zero,
        flushed_by_tensor=weights.cast.flushed_by_tensor,
        source_dtypes=weights.cast.source_dtypes,
        dropped_keys=dropped,
        seconds=seconds,
        bytes_per_s=weights.staged.size / max(seconds, 1e-9),
    )
    return Float16Outcome(status="converted", metadata=metadata, source=plan.source, report=report)


class Float16Weights(BaseModel):
    """A staged fp16 safetensors file (not yet published) and what the casts found."""

    staged: WriteResult
    cast: CastSummary


def stage_float16_weights(
    checkpoint: LazyCheckpoint,
    names: Sequence[str],
    dest: Path,
    header_metadata: Mapping[str, str],
    progress: Progress | None = None,
) -> Float16Weights:
    """Stream ``names`` from ``checkpoint`` through the fp16 cast into a staged file for ``dest``.

    Holds one converted tensor at a time (in one reused buffer); each source tensor's mapped
    pages are released once its bytes are written. On any error (range check, write failure)
    the staged file is gone. The caller publishes ``staged.path``.
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

    staged = stage_safetensors(dest, specs, produce, header_metadata, on_written=written)
    return Float16Weights(staged=staged, cast=summary)


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


def stored_dtype(path: Path) -> str:
    """The one torch dtype name (``"float16"``) all tensors of ``path`` have, from its header."""
    with open_checkpoint(path) as stored:
        dtypes = {str(stored.spec(n).dtype).removeprefix("torch.") for n in stored.names}
    if len(dtypes) != 1:
        raise ValueError(f"{path}: expected one dtype for all tensors, found {sorted(dtypes)}")
    return dtypes.pop()
