"""The one path every checkpoint format takes to a float16 v2 artifact.

A format module (``convert_meta``, ``convert_hf_llama``) reads its configs into a
:class:`Float16Plan` (the expected tensors, what to drop, the configs to write, its entries of
``metadata.json``) and hands it to :func:`convert_to_float16`, which does the rest the same way
for every format, holding the artifact's lock throughout:

1. up to date? With ``reuse_current``, an artifact whose ``metadata.json`` records the same
   raw-file SHA256s and code version, and whose stored files still have the sizes and then
   the SHA256s it records, is left untouched (``current_metadata``); otherwise it is rebuilt;
2. sweep temporary files of interrupted runs, start re-hashing every raw file ``SOURCE.json``
   records (``source_digest``, in the background), open the checkpoint without reading tensor
   bytes, check the format's config against it and the tokenizer (``upstream_consistency``),
   names and shapes against the plan and every tensor being float, all BEFORE writing anything;
3. stream every tensor, in the order the forward pass reads them, through the range-checked
   cast (``fp16_cast``) into a staged ``safetensors/model.safetensors``, one converted tensor
   in memory at a time, running the source's forward on each stage as its tensors pass;
4. refuse to go on unless every raw file hashed to its ``SOURCE.json`` SHA256 (the bytes just
   converted are the ones the record vouches for);
5. stage the format's configs and publish everything at once under a new ``SHA256SUMS``
   (``artifact.ArtifactStaging``): until the last rename the previous artifact stays complete
   or the folder has no seal;
6. write ``proof/source_trace.safetensors``: what the source computed on the forward check's
   prompt, traced in step 3's pass (``models.streamed_forward``), bound to the raw files'
   and the weights' SHA256, so the forward check need not read the source again.

A forced rewrite of the same input produces identical bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field
from safetensors import safe_open

from wmtp_assets.files.atomic import atomic_write_bytes
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.files.lock import artifact_lock
from wmtp_assets.models.artifact import WEIGHTS as WEIGHTS  # re-exported for the assets
from wmtp_assets.models.artifact import (
    ArtifactStaging,
    ModelMetadata,
    SourceInfo,
    TokenizerInfo,
    current_metadata,
    provenance_fields,
    staged_artifact,
)
from wmtp_assets.models.checkpoint_reader import LazyCheckpoint
from wmtp_assets.models.fp16_cast import CastSummary, cast_to_float16, require_float_sources
from wmtp_assets.models.safetensors_writer import (
    TensorSpec,
    WriteResult,
    stage_safetensors,
    tensor_order,
    torch_dtype,
)
from wmtp_assets.models.shapes import Shapes, require_shapes
from wmtp_assets.models.source_digest import SourceChangedError, SourceDigests
from wmtp_assets.models.streamed_architectures import StreamedArchitecture
from wmtp_assets.models.streamed_forward import TraceBuilder, trace_metadata
from wmtp_assets.models.upstream_consistency import Contradiction, require_consistent
from wmtp_assets.sources import SourceError, read_provenance
from wmtp_assets.sources.provenance import SOURCE_FILE, checked_repo_path

Progress = Callable[[str], None]
ConfigFiles = Mapping[Path, bytes | Path]
"""Destination -> its bytes, or the file to copy there."""


@dataclass(frozen=True)
class Float16Plan:
    """What one source format decides; everything else in a conversion is shared.

    ``raw_dir`` is the folder ``source.files`` (its ``SOURCE.json`` records) are relative to;
    ``checkpoint`` is the file or folder errors name; ``open`` opens it lazily;
    ``expected`` is what ``against`` (a config file) implies; ``architecture`` runs the source's
    forward while it is read (its trace is published); ``is_dropped`` picks the tensors
    that are not weights (``rope.freqs``, ``inv_freq``); ``configs(dtype)`` are the format's
    config files, published with the weights; ``folders`` are the output folders besides
    ``safetensors/`` this format writes (swept of stale temporary files); the rest are
    ``metadata.json`` fields.
    """

    model_name: str
    implementation: Literal["pure_pytorch", "hf_llama"]
    raw_dir: Path
    checkpoint: Path
    open: Callable[[Progress | None], LazyCheckpoint]
    expected: Shapes
    against: str
    architecture: StreamedArchitecture
    is_dropped: Callable[[str], bool]
    configs: Callable[[str], ConfigFiles]
    folders: Sequence[Path]
    source: SourceInfo
    tokenizer: TokenizerInfo
    safetensors: Mapping[str, Any]
    distributed: Mapping[str, Any] = field(default_factory=dict)
    tokenizer_shared_with: str | None = None
    contradictions: Callable[[LazyCheckpoint], list[Contradiction]] | None = None
    """Where the format's config contradicts the opened checkpoint or the tokenizer
    (``upstream_consistency``); any refuses the conversion before anything is written."""


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
    verified_sources: list[str] = Field(
        description=f"raw files re-hashed during the conversion and equal to {SOURCE_FILE}"
    )
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
    device: torch.device | str = "cpu",
) -> Float16Outcome:
    """Convert ``plan`` into ``dirs`` (see the module docstring) or find it up to date.

    Waits up to ``lock_timeout_s`` for a concurrent conversion of the same artifact, then
    raises ``ArtifactLockedError``. ``device`` runs the source's forward trace.
    """
    started = time.monotonic()
    with artifact_lock(dirs.root, timeout_s=lock_timeout_s, notify=progress):
        current = (
            current_metadata(dirs, plan.source.files, code_version, progress)
            if reuse_current
            else None
        )
        if current is not None:
            if progress is not None:
                progress(
                    f"{dirs.weights} is current: same raw SHA256s and code version, every "
                    "stored file re-hashed to its recorded SHA256"
                )
            return Float16Outcome(
                status="up to date (not rewritten)", metadata=current, source=plan.source
            )
        with (
            staged_artifact(dirs, plan.folders) as artifact,
            SourceDigests(recorded_sources(plan)) as digests,
            plan.open(progress) as checkpoint,
        ):
            if plan.contradictions is not None:
                require_consistent(plan.contradictions(checkpoint))
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
            require_recorded_checkpoint(plan, checkpoint.files, digests.files)
            source_files = sorted(p.name for p in checkpoint.files)
            checkpoint.on_release = digests.drop_when_hashed
            trace = TraceBuilder(plan.architecture, torch.device(device), str(plan.checkpoint))
            weights = stage_float16_weights(
                checkpoint, names, dirs.weights, {"format": "pt"}, progress, trace
            )
            artifact.adopt(weights.staged.path, dirs.weights, weights.staged.sha256)
            digests.require_recorded()
            if progress is not None and digests.files:
                progress(f"{len(digests.files)} raw files hash to their {SOURCE_FILE} SHA256")
            dtype = stored_dtype(weights.staged.path)
            stage_configs(artifact, plan.configs(dtype))
            metadata = artifact.publish(
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
            # After the publish and outside the seal: float sums differ in their last bits
            # between machines and thread counts, so the trace cannot be part of the artifact's
            # byte-identical files; it names the weights and raw files it belongs to instead.
            binding = trace_metadata(plan.source.files, weights.staged.sha256)
            atomic_write_bytes(dirs.source_trace, trace.result().to_bytes(binding))
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
        verified_sources=[str(p) for p in digests.files],
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
    trace: TraceBuilder | None = None,
) -> Float16Weights:
    """Stream ``names`` from ``checkpoint`` through the fp16 cast into a staged file for ``dest``.

    Holds one converted tensor at a time (in one reused buffer); each source tensor's mapped
    pages are released once its bytes are written and ``trace`` (fed every source tensor, in
    its order, so the source's forward runs in this same pass) is done with it. On any error
    (range check, write failure) the staged file is gone. The caller publishes
    ``staged.path`` (``ArtifactStaging.adopt``).
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
        released = [name] if trace is None else trace.feed(name, held[name])
        for done in released:
            checkpoint.release(held.pop(done), done)
        if progress is not None:
            rate = so_far / max(time.monotonic() - start, 1e-9) / 1e6
            progress(
                f"tensor {summary.n_tensors}/{len(specs)} {name} {tuple(specs[name].shape)}: "
                f"{so_far / 1e6:.1f}/{total / 1e6:.1f} MB written, {rate:.0f} MB/s"
            )

    order = None if trace is None else conversion_order(trace, specs)
    staged = stage_safetensors(
        dest, specs, produce, header_metadata, on_written=written, order=order
    )
    return Float16Weights(staged=staged, cast=summary)


def conversion_order(trace: TraceBuilder, specs: Mapping[str, TensorSpec]) -> list[str]:
    """The order tensors are converted in: the forward pass's (``trace.order``), so the trace
    runs each stage as its tensors pass, except that tensors the file stores before the first
    trunk block's (Meta's ``extra_heads``, HF's ``lm_head``) go first, in file order.

    Why: the output's SHA256 is hashed from the written prefix; in pure forward order that
    prefix would stay empty until the last tensors and the whole file would be hashed (and
    re-read) at the end. Hoisted tensors wait for their stage in the trace (their pages may be
    read again then: 2.4 GB of 27 at 7B_1T_4); the trunk's lexicographic vs numeric order
    leaves the prefix at most a few blocks behind.
    """
    file_order = tensor_order(specs)
    position = {name: i for i, name in enumerate(file_order)}
    forward = [n for n in trace.order if n in specs]
    trunk = [s for s in trace.stages if s.kind == "trunk"]
    first_trunk = min((position[n] for n in trunk[0].tensors), default=0) if trunk else 0
    hoisted = sorted((n for n in forward if position[n] < first_trunk), key=position.__getitem__)
    first = set(hoisted)
    traced = set(forward)
    rest = [n for n in forward if n not in first]
    return hoisted + rest + [n for n in file_order if n not in traced]


def recorded_sources(plan: Float16Plan) -> dict[Path, str]:
    """Every raw file the plan's ``SOURCE.json`` records, with its recorded SHA256."""
    return {checked_repo_path(plan.raw_dir, rel): sha for rel, sha in plan.source.files.items()}


def require_recorded_checkpoint(
    plan: Float16Plan, checkpoint_files: Sequence[Path], recorded: Sequence[Path]
) -> None:
    """A fetched source (not ``generated``) must record every checkpoint file it is read from:
    bytes nothing vouches for are not converted."""
    if plan.source.kind == "generated":
        return
    missing = [p for p in checkpoint_files if p not in recorded]
    if missing:
        raise SourceChangedError(
            f"{missing[0]}: not recorded in {plan.raw_dir / SOURCE_FILE}; refusing to convert "
            "bytes nothing vouches for (rematerialize the raw asset)"
        )


def stage_configs(artifact: ArtifactStaging, configs: ConfigFiles) -> None:
    """Stage each config file: bytes written, paths copied."""
    for dest, content in configs.items():
        if isinstance(content, Path):
            artifact.copy(dest, content)
        else:
            artifact.write(dest, content)


def stored_dtype(path: Path) -> str:
    """The one torch dtype name (``"float16"``) all tensors of ``path`` have, from its header."""
    with safe_open(path, framework="pt") as stored:
        names = {stored.get_slice(n).get_dtype() for n in stored.keys()}  # noqa: SIM118
    dtypes = {str(torch_dtype(name)).removeprefix("torch.") for name in names}
    if len(dtypes) != 1:
        raise ValueError(f"{path}: expected one dtype for all tensors, found {sorted(dtypes)}")
    return dtypes.pop()
