"""Does a converted float16 model compute what its source checkpoint computes?

Both checkpoints run the same fixed prompt in float32, streamed one stage at a time
(``models.streamed_forward``: the embedding rows of the prompt, each trunk block, each
prediction head on the trunk output, then the shared norm and the output projection). The
source side is a :class:`~wmtp_assets.models.streamed_forward.SourceTrace`, every stage's output:
computed by the float16 conversion in the same pass that converts (so a materialization reads
the 27 GB source once) and published beside the weights, or computed here from ``raw/`` (by
``verify``). The converted side streams the stored file once. Peak memory is one block in
float32 (or the output matrix in its stored dtype plus one chunk in float32) plus the
interpreter, at any depth.

Two comparisons per run, both in float32, so the only difference left is the float16 rounding
of the weights:

- **per stage, on the same input**: the converted stage runs on the source's hidden state as
  well as its own (one batch of two), so each stage's error is its own weights' rounding, not
  what earlier stages passed on. It is the relative L2 error of what the stage adds (a block's
  output minus its input; the embedding rows; the logits), and must stay within
  :data:`STAGE_TOLERANCE`;
- **end to end**: the converted model's own logits against the source's: max abs difference,
  relative L2 error (within :data:`STAGE_TOLERANCE` per stage on the path, the bound when errors
  add up without amplification) and top-1 agreement (reported only: random-weight demo models
  have near-ties).

The tolerance, derived: rounding to float16 changes each weight by a relative ``|d| <= u =
2^-11`` (zero for float16 sources and, in the normal range, for bfloat16 ones, whose 8-bit
mantissa fits in float16's 11). Through one linear map the rounding errors, of independent sign,
add in quadrature: a relative L2 error of about ``u / sqrt(3)`` (the RMS of a uniform rounding
error). A stage chains at most two norms and three weight matrices on any path (norm, w1/w3, w2;
norm, wv, wo; norm, output), so a correct stage is near ``sqrt(5/3) u ~ 6e-4``.
:data:`STAGE_TOLERANCE` is ``16 u ~ 7.8e-3``, about 12 times that: room for the conditioning of
trained weights and the softmax, while a wrong tensor (swapped, transposed, permuted, or scaled
by a few percent) moves its stage by far more (the tests corrupt one tensor and see it fail).

Hugging Face Llama checkpoints run through transformers' own ``LlamaDecoderLayer``,
``LlamaRMSNorm`` and rotary embedding, one layer at a time: transformers defines what HF-named
weights compute (downstream loads them with ``from_pretrained``), so no q/k permutation is
re-derived here. Meta MTP checkpoints run through this project's ``TransformerBlock``.

Models generated in float16 (the micro models) have no source checkpoint: they compare the
streamed forward of the stored file with the whole model loaded the way the trainer loads it
(``Transformer.load_meta_state_dict``; ``from_pretrained``), which proves the file loads into
that class and runs finite, and that the streaming path is the model's forward.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from pydantic import BaseModel
from safetensors import SafetensorError
from torch import Tensor

from wmtp_assets.models.checkpoint_reader import open_checkpoint
from wmtp_assets.models.streamed_architectures import StreamedArchitecture
from wmtp_assets.models.streamed_forward import (
    EMBEDDING,
    LOGITS,
    TRACE_SOURCE,
    TRACE_WEIGHTS,
    Opener,
    SourceTrace,
    StageRunner,
    non_finite_count,
    prompt_tokens,
    stage_tensors,
    trace_checkpoint,
)

FLOAT16_UNIT_ROUNDOFF = 2.0**-11
STAGE_TOLERANCE = 16 * FLOAT16_UNIT_ROUNDOFF


class EquivalenceReport(BaseModel):
    """What one comparison found; :attr:`problems` is empty when it passes."""

    reference: Literal["source checkpoint", "source trace", "whole model"]
    device: str
    prompt: list[int]
    logits_shape: list[int]
    finite: bool
    non_finite_parameters: dict[str, int]
    stage_errors: dict[str, float]
    stage_tolerance: float
    logits_rel_error: float
    logits_max_abs_diff: float
    logits_tolerance: float
    top1_agreement: float
    seconds: float

    @property
    def worst_stage(self) -> tuple[str, float] | None:
        if not self.stage_errors:
            return None
        name = max(self.stage_errors, key=self.stage_errors.__getitem__)
        return name, self.stage_errors[name]

    @property
    def problems(self) -> list[str]:
        found: list[str] = []
        if self.non_finite_parameters:
            first = next(iter(self.non_finite_parameters))
            found.append(
                f"{len(self.non_finite_parameters)} tensors hold NaN or Inf, first {first} "
                f"({self.non_finite_parameters[first]} values)"
            )
        if not self.finite:
            found.append("the converted model's logits contain NaN or Inf")
        over = {n: e for n, e in self.stage_errors.items() if not e <= self.stage_tolerance}
        if over:
            first = next(iter(over))
            found.append(
                f"{len(over)} stages differ beyond {self.stage_tolerance:.2e}, first {first} "
                f"(relative error {over[first]:.2e})"
            )
        if not self.logits_rel_error <= self.logits_tolerance:
            found.append(
                f"logits relative error {self.logits_rel_error:.2e} > {self.logits_tolerance:.2e}"
            )
        return found


def relative_error(found: Tensor, expected: Tensor) -> float:
    """``||found - expected|| / ||expected||`` (L2, float64 on the CPU); 0 for two zeros."""
    found, expected = found.double().cpu(), expected.double().cpu()
    scale = float(torch.linalg.vector_norm(expected))
    diff = float(torch.linalg.vector_norm(found - expected))
    return diff / scale if scale else (0.0 if diff == 0 else float("inf"))


def _trace_latents(arch: StreamedArchitecture, trace: SourceTrace) -> Tensor:
    """What the source fed its norm + output: the heads' outputs stacked, or the trunk's."""
    if arch.heads:
        return torch.stack([trace.states[h] for h in arch.heads], -2)
    last = arch.trunk[-1] if arch.trunk else EMBEDDING
    return trace.states[last][:, :, None]


class Streamed(NamedTuple):
    """What one streamed run of the converted checkpoint found."""

    logits: Tensor
    stage_errors: dict[str, float]
    non_finite: dict[str, int]


@torch.no_grad()
def streamed_logits(
    arch: StreamedArchitecture,
    converted: Opener,
    device: torch.device,
    trace: SourceTrace | None = None,
    tokens: Tensor | None = None,
) -> Streamed:
    """The converted checkpoint's logits, streamed once stage by stage, with (given the source's
    ``trace``) each stage's error on the source's own input, and the tensors holding NaN/Inf.

    With a trace, each converted stage runs on ``[source input; converted input]`` (a batch of
    two): the first row is the same-input comparison, the second the converted model's own
    forward."""
    if tokens is None:
        tokens = trace.tokens if trace is not None else prompt_tokens(arch.vocab_size)
    runner = StageRunner(arch, device, tokens.shape[1])
    errors: dict[str, float] = {}
    non_finite: dict[str, int] = {}
    src_in = src_trunk = None
    conv = conv_trunk = torch.empty(0)
    conv_heads: list[Tensor] = []
    logits = torch.empty(0)

    def both(src: Tensor | None, mine: Tensor) -> Tensor:
        return mine if src is None else torch.cat([src.to(device), mine])

    with converted() as checkpoint:
        label = ", ".join(str(p) for p in checkpoint.files)
        for stage, tensors in stage_tensors(checkpoint, arch):
            for name, tensor in tensors.items():
                if bad := non_finite_count(tensor):
                    non_finite[name] = bad
            expected = None if trace is None else trace.states[stage.name].to(device)
            if stage.kind == "embedding":
                conv = conv_trunk = runner.embed(tensors, tokens)
                src_in = src_trunk = expected
                if expected is not None:
                    errors[EMBEDDING] = relative_error(conv, expected)
                continue
            if stage.kind in ("trunk", "head"):
                src_in = src_trunk if stage.kind == "head" else src_in
                start = conv_trunk if stage.kind == "head" else conv
                out = runner.block(stage, tensors, both(src_in, start), label)
                mine = out if src_in is None else out[1:]
                if expected is not None and src_in is not None:
                    errors[stage.name] = relative_error(out[:1] - src_in, expected - src_in)
                if stage.kind == "trunk":
                    conv = conv_trunk = mine
                    src_in = src_trunk = expected
                else:
                    conv_heads.append(mine)
                continue
            latents = torch.stack(conv_heads, -2) if conv_heads else conv_trunk[:, :, None]
            src_latents = None
            if trace is not None:
                src_latents = _trace_latents(arch, trace)
            out = runner.logits(tensors, both(src_latents, latents), label)
            logits = out if src_latents is None else out[1:]
            if expected is not None:
                errors[LOGITS] = relative_error(out[:1], expected)
    return Streamed(logits, errors, non_finite)


def _report(
    reference: Literal["source checkpoint", "source trace", "whole model"],
    expected: Tensor,
    run: Streamed,
    logits_tolerance: float,
    tokens: Tensor,
    device: torch.device,
    started: float,
) -> EquivalenceReport:
    expected, found = expected.float().cpu(), run.logits.float().cpu()
    finite = bool(torch.isfinite(found).all())
    agree = (expected.argmax(-1) == found.argmax(-1)).float().mean()
    return EquivalenceReport(
        reference=reference,
        device=str(device),
        prompt=tokens[0].tolist(),
        logits_shape=list(found.shape),
        finite=finite,
        non_finite_parameters=run.non_finite,
        stage_errors=run.stage_errors,
        stage_tolerance=STAGE_TOLERANCE,
        logits_rel_error=relative_error(found, expected),
        logits_max_abs_diff=float((found - expected).abs().max()),
        logits_tolerance=logits_tolerance,
        top1_agreement=float(agree),
        seconds=time.monotonic() - started,
    )


def trace_comparison(
    arch: StreamedArchitecture,
    trace: SourceTrace,
    converted: Opener,
    device: torch.device,
    started: float | None = None,
    recorded: bool = False,
) -> tuple[EquivalenceReport, Streamed]:
    """The converted checkpoint against what its source computed (see the module docstring),
    and the converted run it compared (its logits, for checks that read a model-specific
    quantity from them: a reward model's reward). ``recorded``: the trace is the conversion's,
    not computed from the source just now."""
    started = time.monotonic() if started is None else started
    run = streamed_logits(arch, converted, device, trace)
    path_stages = len(arch.trunk) + 3  # embedding, trunk, one head, norm + output
    report = _report(
        "source trace" if recorded else "source checkpoint",
        trace.states[LOGITS],
        run,
        STAGE_TOLERANCE * path_stages,
        trace.tokens,
        device,
        started,
    )
    return report, run


def bound_trace(
    path: Path, weights_sha256: str | None, source_sha256: Mapping[str, str] | None
) -> tuple[SourceTrace | None, str]:
    """The conversion's trace at ``path`` if it belongs to exactly these weights and raw files
    (the SHA256s ``SHA256SUMS`` and ``raw/SOURCE.json`` record), else None and why not."""
    if not path.is_file():
        return None, f"{path}: no trace recorded"
    try:
        trace, metadata = SourceTrace.load(path)
        bound_source = json.loads(metadata[TRACE_SOURCE])
        bound_weights = metadata[TRACE_WEIGHTS]
    except (OSError, SafetensorError, KeyError, ValueError) as exc:
        return None, f"{path}: unreadable trace ({exc})"
    if bound_weights != weights_sha256:
        return None, f"{path}: traced with weights {bound_weights[:12]}…, not the stored ones"
    if bound_source != dict(source_sha256 or {}):
        return None, f"{path}: traced from other raw files than raw/SOURCE.json records"
    return trace, ""


def compare_to_source(
    arch: StreamedArchitecture, source: Opener, converted: Opener, device: torch.device
) -> EquivalenceReport:
    """The converted checkpoint against its source, each read once: the source's trace first."""
    started = time.monotonic()
    trace = trace_checkpoint(arch, source, device)
    return trace_comparison(arch, trace, converted, device, started)[0]


def compare_to_whole_model(
    arch: StreamedArchitecture, folder: Path, device: torch.device
) -> EquivalenceReport:
    """The streamed forward of ``folder/model.safetensors`` against the whole loaded model.

    Same weights on both paths, so only float32 summation order differs: the logits must agree
    within one stage's tolerance.
    """
    started = time.monotonic()
    tokens = prompt_tokens(arch.vocab_size)
    weights = folder / "model.safetensors"
    run = streamed_logits(arch, lambda: open_checkpoint(weights), device, None, tokens)
    with torch.no_grad():
        whole = arch.whole_model_logits(folder, tokens, device)
    return _report("whole model", whole, run, STAGE_TOLERANCE, tokens, device, started)
