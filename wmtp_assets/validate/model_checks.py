"""Pure checks over a stored model artifact (no Dagster): each returns a ``CheckOutcome``.

They read only what is stored, so the same functions serve the asset checks that run after a
materialization, the scheduled revalidation and ``wmtp-assets verify``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import yaml

from wmtp_assets.files.hashing import read_sha256sums, sha256_file, sha256_scan
from wmtp_assets.files.json_files import InvalidJsonFileError, read_json_model, read_json_object
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.artifact import (
    METADATA,
    WEIGHTS,
    ModelMetadata,
    artifact_files,
    seal_name,
    seal_target,
)
from wmtp_assets.models.checkpoint_reader import (
    HF_INDEX_FILES,
    HF_SINGLE_FILES,
    open_checkpoint,
    open_hf_shards,
)
from wmtp_assets.models.convert_meta import CHECKPOINT as META_CHECKPOINT
from wmtp_assets.models.cpu_threads import cores_shared_with_io
from wmtp_assets.models.hf_llama import read_llama_config
from wmtp_assets.models.mtp.args import ModelArgs
from wmtp_assets.models.safetensors_writer import TensorSpec, safetensors_dtype
from wmtp_assets.models.shapes import diff_shapes, hf_llama_shapes, meta_shapes
from wmtp_assets.models.streamed_architectures import (
    HFLlamaArchitecture,
    MetaMTPArchitecture,
    StreamedArchitecture,
)
from wmtp_assets.models.streamed_forward import Opener, non_finite_count
from wmtp_assets.models.tokenizer_files import load_sentencepiece
from wmtp_assets.sources.provenance import read_provenance
from wmtp_assets.validate import forward_equivalence as fe
from wmtp_assets.validate.outcome import CheckOutcome

ModelFormat = Literal["meta", "meta_hf_config", "hf_llama"]
HF_CHECKPOINT_FILES = (*HF_INDEX_FILES, *HF_SINGLE_FILES)


def _metadata(dirs: ModelDirs) -> dict[str, Any]:
    return read_json_object(dirs.metadata, "a metadata.json object")


def _stored_specs(dirs: ModelDirs) -> dict[str, TensorSpec]:
    """Dtype and shape of every stored tensor, from the header (``safe_open`` validates it)."""
    with open_checkpoint(dirs.weights) as stored:
        return {name: stored.spec(name) for name in stored.names}


def sha256_matches(dirs: ModelDirs) -> CheckOutcome:
    """The artifact is completely published and every byte is as sealed: ``SHA256SUMS`` (written
    last, see ``models.artifact``) and ``metadata.json`` exist, the seal lists exactly the files
    ``metadata.json`` records plus ``metadata.json`` itself with the same SHA256s, no file of the
    artifact is left out, and every listed file (the weights included) hashes to its entry."""
    for path in (dirs.sha256sums, dirs.metadata):
        if not path.is_file():
            return CheckOutcome.fail(
                f"{path}: missing; the artifact was never completely published (SHA256SUMS is "
                "renamed into place last); rematerialize it",
                file=str(path),
            )
    try:
        sums = read_sha256sums(dirs.sha256sums)
    except ValueError as exc:
        return CheckOutcome.fail(str(exc), file=str(dirs.sha256sums))
    try:
        recorded = read_json_model(ModelMetadata, dirs.metadata, "a valid metadata.json").files
    except InvalidJsonFileError as exc:
        return CheckOutcome.fail(str(exc), file=exc.file, expected=exc.expected, found=exc.found)
    listed: dict[str, str] = {}
    for name, sha in sums.items():
        rel = seal_target(name)
        if rel is None:
            return CheckOutcome.fail(
                f"{dirs.sha256sums}: entry {name!r} is not a file of the artifact",
                file=str(dirs.sha256sums),
            )
        listed[rel] = sha
    if WEIGHTS not in listed:
        return CheckOutcome.fail(
            f"{dirs.sha256sums}: does not list the weights {seal_name(WEIGHTS)}",
            file=str(dirs.sha256sums),
        )
    expected = {**recorded, METADATA: listed.get(METADATA)}
    for rel in sorted(expected.keys() | listed.keys() | artifact_files(dirs).keys()):
        disagreement = _seal_disagreement(rel, listed.get(rel), expected.get(rel), rel in expected)
        if disagreement:
            return CheckOutcome.fail(
                f"{dirs.root / rel}: {disagreement}",
                file=str(dirs.root / rel),
                expected=expected.get(rel),
                found=listed.get(rel),
            )
    for rel, sha in sorted(listed.items(), key=lambda item: item[0] != WEIGHTS):
        path = dirs.root / rel
        found = sha256_file(path) if path.is_file() else None
        if found != sha:
            return CheckOutcome.fail(
                f"{path}: SHA256 {found or 'missing'} != SHA256SUMS {sha}",
                file=str(path),
                expected=sha,
                found=found,
            )
    return CheckOutcome.ok(
        f"weights and {len(listed) - 1} other files match SHA256SUMS and metadata.json",
        sha256=listed[WEIGHTS],
    )


def _seal_disagreement(
    rel: str, sealed: str | None, recorded: str | None, in_metadata: bool
) -> str | None:
    """How ``SHA256SUMS`` and ``metadata.json`` disagree about one file, if they do."""
    if sealed is None:
        return "not listed in SHA256SUMS" + (" (metadata.json lists it)" if in_metadata else "")
    if not in_metadata:
        return "listed in SHA256SUMS but not in metadata.json"
    if rel != METADATA and sealed != recorded:
        return f"SHA256SUMS says {sealed}, metadata.json says {recorded}"
    return None


def dtype_is_float16(dirs: ModelDirs) -> CheckOutcome:
    """Every tensor is F16 according to the header alone, and metadata.json says so."""
    specs = _stored_specs(dirs)
    others = {n: safetensors_dtype(s.dtype) for n, s in specs.items() if s.dtype != torch.float16}
    declared = _metadata(dirs).get("dtype")
    if others:
        first = sorted(others)[0]
        return CheckOutcome.fail(
            f"{dirs.weights}: {len(others)} tensors are not F16, first {first} is {others[first]}",
            file=str(dirs.weights),
            first_tensor=first,
            found=others[first],
            expected="F16",
        )
    if declared != "float16":
        return CheckOutcome.fail(
            f"{dirs.metadata}: dtype says {declared!r}, the header stores F16",
            expected="float16",
            found=declared,
        )
    return CheckOutcome.ok(f"{len(specs)} tensors, all F16")


def values_are_finite(dirs: ModelDirs) -> CheckOutcome:
    """No NaN or Inf in any tensor (the safetensors library stores them silently). One pass
    over the file, which also hashes it for ``sha256_matches`` and the seal of the same step."""
    specs = _stored_specs(dirs)  # safe_open validates the header read again below
    with open(dirs.weights, "rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(length))
    spans = []
    for name, spec in specs.items():
        if spec.dtype.is_floating_point and spec.nbytes:
            begin = 8 + length + header[name]["data_offsets"][0]
            spans.append((begin, begin + spec.nbytes, name, spec.dtype))
    spans.sort()
    bad: dict[str, int] = {}
    cursor = 0

    def consume(chunk: memoryview, offset: int) -> None:
        nonlocal cursor
        end = offset + len(chunk)
        while cursor < len(spans) and spans[cursor][1] <= offset:
            cursor += 1
        for begin, stop, name, dtype in spans[cursor:]:
            if begin >= end:
                break
            lo, hi = max(begin, offset) - offset, min(stop, end) - offset
            values = torch.frombuffer(chunk[lo:hi], dtype=dtype)
            if found := non_finite_count(values):
                bad[name] = bad.get(name, 0) + found

    with cores_shared_with_io():  # a reader and a hashing thread run beside each aminmax
        sha256_scan(dirs.weights, consume)
    if bad:
        first = sorted(bad)[0]
        return CheckOutcome.fail(
            f"{dirs.weights}: {len(bad)} tensors hold NaN or Inf, first {first} "
            f"({bad[first]} values)",
            file=str(dirs.weights),
            first_tensor=first,
            non_finite=bad[first],
            tensors_with_non_finite=len(bad),
        )
    return CheckOutcome.ok(f"{len(specs)} tensors, all values finite")


def meta_args(dirs: ModelDirs) -> ModelArgs:
    """Args from the stored params.json; a ``"vocab_size": -1`` takes the tokenizer's size."""
    vocab = load_sentencepiece(dirs.tokenizer / "tokenizer.model").vocab_size()
    return ModelArgs.from_params_json(dirs.configs / "params.json", vocab_size=vocab)


def expected_shapes(dirs: ModelDirs, fmt: ModelFormat) -> dict[str, tuple[int, ...]]:
    """The keys and shapes the stored config implies."""
    if fmt == "meta":
        return meta_shapes(meta_args(dirs))
    config_path = dirs.configs / "config.json"
    if fmt == "meta_hf_config":
        return meta_shapes(ModelArgs.from_hf_config(config_path))
    return hf_llama_shapes(read_llama_config(config_path), source=str(config_path))


def stored_vocab_size(dirs: ModelDirs, fmt: ModelFormat) -> int:
    """The vocabulary size the stored config gives the model (read as the model reads it)."""
    config_path = dirs.configs / "config.json"
    if fmt == "meta":
        return meta_args(dirs).vocab_size
    if fmt == "meta_hf_config":
        return ModelArgs.from_hf_config(config_path).vocab_size
    return int(read_llama_config(config_path)["vocab_size"])


def keys_and_shapes_match_config(dirs: ModelDirs, fmt: ModelFormat) -> CheckOutcome:
    """The header's tensors are exactly those the config implies, with the same shapes."""
    found = {name: spec.shape for name, spec in _stored_specs(dirs).items()}
    diff = diff_shapes(expected_shapes(dirs, fmt), found)
    if diff:
        return CheckOutcome.fail(
            f"{dirs.weights}: {len(diff.missing)} missing, {len(diff.unexpected)} unexpected, "
            f"{len(diff.mis_shaped)} mis-shaped tensors",
            file=str(dirs.weights),
            missing=diff.missing[:20],
            unexpected=diff.unexpected[:20],
            mis_shaped={n: f"expected {e}, found {f}" for n, e, f in diff.mis_shaped[:20]},
        )
    return CheckOutcome.ok(f"{len(found)} tensors match the config")


def _disagreements(sources: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    fields = set().union(*(s.keys() for s in sources.values()))
    out: dict[str, dict[str, Any]] = {}
    for field in sorted(fields):
        values = {name: s[field] for name, s in sources.items() if field in s}
        if len({json.dumps(v) for v in values.values()}) > 1:
            out[field] = values
    return out


def configs_agree(dirs: ModelDirs, fmt: ModelFormat) -> CheckOutcome:
    """Config files and metadata.json describe the same model (dims, dtype, parameter count)."""
    metadata = _metadata(dirs)
    n_params = sum(torch.Size(s).numel() for s in expected_shapes(dirs, fmt).values())
    sources: dict[str, dict[str, Any]] = {
        "metadata.json": {"n_params": metadata["n_params"], "dtype": metadata["dtype"]},
        "config (derived)": {"n_params": n_params},
    }
    if fmt == "meta":
        params = read_json_object(dirs.configs / "params.json")
        adapter = yaml.safe_load((dirs.configs / "meta_adapter.yaml").read_text())
        args = meta_args(dirs)
        sources["params.json"] = {
            "dim": params["dim"],
            "n_layers": params["n_layers"],
            "n_future_tokens": params.get("n_future_tokens", 1),
            "rope_theta": params.get("rope_theta", 10000.0),
            "intermediate_size": args.ffn_hidden_dim,
        }
        sources["meta_adapter.yaml"] = {
            "dim": adapter["dim"],
            "n_layers": adapter["num_layers"],
            "n_future_tokens": adapter["n_future_tokens"],
            "rope_theta": adapter["rope_theta"],
            "intermediate_size": adapter["intermediate_size"],
            "dtype": adapter["dtype"],
        }
    else:
        for path in (dirs.configs / "config.json", dirs.safetensors / "config.json"):
            if path.exists():
                config = read_json_object(path)
                name = path.relative_to(dirs.root).as_posix()
                sources[name] = {**config, "dtype": config.get("torch_dtype")}
    disagreements = _disagreements(sources)
    if disagreements:
        field = next(iter(disagreements))
        return CheckOutcome.fail(
            f"{dirs.root}: {len(disagreements)} fields disagree, first {field}: "
            f"{disagreements[field]}",
            disagreements=disagreements,
        )
    return CheckOutcome.ok(f"{len(sources)} descriptions agree", n_params=n_params)


def tokenizer_sha256_shared(
    folders: Sequence[Path], expected_sha256: str, vocab_sizes: Mapping[str, int]
) -> CheckOutcome:
    """Every ``tokenizer.model`` equals WMTP_TOKENIZER_SHA256; every model's vocab equals it."""
    hashes = {str(f): sha256_file(f / "tokenizer.model") for f in folders}
    wrong = {f: h for f, h in hashes.items() if h != expected_sha256}
    if wrong:
        first = sorted(wrong)[0]
        return CheckOutcome.fail(
            f"{first}/tokenizer.model: SHA256 {wrong[first]} != WMTP_TOKENIZER_SHA256 "
            f"{expected_sha256}",
            expected=expected_sha256,
            found=wrong,
        )
    vocab = load_sentencepiece(Path(folders[0]) / "tokenizer.model").vocab_size()
    off = {name: v for name, v in vocab_sizes.items() if v != vocab}
    if off:
        return CheckOutcome.fail(
            f"model vocab sizes {off} differ from the tokenizer's {vocab}",
            expected=vocab,
            found=off,
        )
    return CheckOutcome.ok(
        f"{len(folders)} tokenizer files share SHA256 {expected_sha256[:12]}…, vocab {vocab}",
        vocab_size=vocab,
    )


def resolve_device(requested: str) -> torch.device:
    """WMTP_DEVICE: ``auto`` picks cuda, then mps, then cpu; an unavailable device fails."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("WMTP_DEVICE=cuda but torch sees no CUDA device")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("WMTP_DEVICE=mps but torch sees no MPS device")
    return torch.device(requested)


def _source_checkpoint(dirs: ModelDirs, fmt: ModelFormat) -> Opener | None:
    """The upstream checkpoint in ``raw/`` to compare with; None for a generated model."""
    if fmt == "meta" and (dirs.raw / META_CHECKPOINT).is_file():
        return lambda: open_checkpoint(dirs.raw / META_CHECKPOINT)
    if fmt == "hf_llama" and any((dirs.raw / n).is_file() for n in HF_CHECKPOINT_FILES):
        return lambda: open_hf_shards(dirs.raw)
    kind = _metadata(dirs)["source"]["kind"]
    if kind != "generated":
        raise FileNotFoundError(
            f"{dirs.raw}: no source checkpoint for this {kind} model; the forward check "
            "compares the converted weights with it (materialize the raw asset)"
        )
    return None


def _architecture(dirs: ModelDirs, fmt: ModelFormat) -> StreamedArchitecture:
    if fmt == "meta":
        return MetaMTPArchitecture(meta_args(dirs))
    config_path = dirs.configs / "config.json"
    if fmt == "meta_hf_config":
        return MetaMTPArchitecture(ModelArgs.from_hf_config(config_path))
    return HFLlamaArchitecture(read_llama_config(config_path))


def forward_pass(dirs: ModelDirs, fmt: ModelFormat, device: str) -> CheckOutcome:
    """On ``device``, the converted model gives its source checkpoint's logits within float16
    rounding, block by block and end to end, streamed one block at a time. The source side is
    the trace the conversion recorded in ``proof/`` while it read the source (bound to these
    weights' and raw files' SHA256; ``raw_matches_source`` proves raw/ still has those bytes),
    or, without a valid one, computed from ``raw/`` now. A generated model: the streamed
    forward gives the whole loaded model's logits."""
    target = resolve_device(device)
    arch = _architecture(dirs, fmt)
    source = _source_checkpoint(dirs, fmt)
    converted: Opener = lambda: open_checkpoint(dirs.weights)  # noqa: E731
    why_not_recorded = ""
    if source is None:
        report = fe.compare_to_whole_model(arch, dirs.safetensors, target)
    else:
        sums = read_sha256sums(dirs.sha256sums) if dirs.sha256sums.is_file() else {}
        weights_sha = sums.get(seal_name(WEIGHTS))
        recorded = read_provenance(dirs.raw)
        source_sha = {r.path: r.sha256 for r in recorded.files} if recorded else None
        trace, why_not_recorded = fe.bound_trace(dirs.source_trace, weights_sha, source_sha)
        if trace is not None:
            report = fe.trace_comparison(arch, trace, converted, target, recorded=True)[0]
        else:
            report = fe.compare_to_source(arch, source, converted, target)
    worst = report.worst_stage
    details: dict[str, Any] = {
        "reference": report.reference,
        "device": report.device,
        "logits_shape": report.logits_shape,
        "logits_rel_error": report.logits_rel_error,
        "logits_max_abs_diff": report.logits_max_abs_diff,
        "logits_tolerance": report.logits_tolerance,
        "top1_agreement": report.top1_agreement,
        "stage_tolerance": report.stage_tolerance,
        "prompt": report.prompt,
        "seconds": report.seconds,
    }
    if why_not_recorded:
        details["source_traced_now_because"] = why_not_recorded
    if worst is not None:
        details["worst_stage"] = {"stage": worst[0], "rel_error": worst[1]}
        details["stage_errors"] = report.stage_errors
    against = {
        "source trace": f"the source's trace {dirs.source_trace.name}",
        "source checkpoint": "the source checkpoint",
        "whole model": "the whole loaded model",
    }[report.reference]
    if report.problems:
        return CheckOutcome.fail(
            f"{dirs.weights} vs {against} on {target}: " + "; ".join(report.problems), **details
        )
    stages = (
        f", every stage within {report.stage_tolerance:.1e} (worst {worst[0]} {worst[1]:.1e})"
        if worst is not None
        else ""
    )
    return CheckOutcome.ok(
        f"logits {tuple(report.logits_shape)} on {target} match {against}: relative error "
        f"{report.logits_rel_error:.1e} (tolerance {report.logits_tolerance:.1e}), top-1 "
        f"agreement {report.top1_agreement:.0%}{stages}",
        **details,
    )


def size_matches_config(dirs: ModelDirs, fmt: ModelFormat) -> CheckOutcome:
    """The tensor data is exactly 2 bytes per parameter the config implies (float16)."""
    # safe_open has checked that the tensors tile the data region up to the end of the file
    data = sum(spec.nbytes for spec in _stored_specs(dirs).values())
    n_params = sum(torch.Size(s).numel() for s in expected_shapes(dirs, fmt).values())
    if data != 2 * n_params:
        return CheckOutcome.fail(
            f"{dirs.weights}: {data} bytes of tensor data, config implies {2 * n_params}",
            expected=2 * n_params,
            found=data,
        )
    return CheckOutcome.ok(
        f"{data:,} bytes of tensor data = 2 x {n_params:,} parameters",
        file_bytes=dirs.weights.stat().st_size,
    )
