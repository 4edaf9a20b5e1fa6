"""Does a converted float16 model compute what its source checkpoint computes?

Both checkpoints run the same fixed prompt (:func:`prompt_tokens`) in float32 on one device,
streamed one stage at a time: the embedding rows of the prompt, each trunk block, each
prediction head on the trunk output, then the shared norm and the output projection. A stage's
module is built on the ``meta`` device, its tensors are taken from the lazily opened checkpoint
(``open_checkpoint``/``open_hf_shards``: memory-mapped pickles, ``safe_open``), assigned on the
target device, run, and dropped, and the checkpoint handle is closed again, so its mapped pages
leave the resident set. Peak memory is one block in float32 (or the output matrix in its stored
dtype plus one chunk in float32) plus the interpreter, at any depth; each file is read once.

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

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from pydantic import BaseModel
from torch import Tensor, nn

from wmtp_assets.models.checkpoint_reader import LazyCheckpoint, open_checkpoint
from wmtp_assets.validate.streamed_architectures import StreamedArchitecture

FLOAT16_UNIT_ROUNDOFF = 2.0**-11
STAGE_TOLERANCE = 16 * FLOAT16_UNIT_ROUNDOFF
PROMPT_LENGTH = 8
PROMPT_SEED = 0
OUTPUT_ROWS_PER_CHUNK = 4096
"""Rows of the output matrix cast to float32 at a time (16 MB at dim 1024, 64 MB at 4096)."""

Opener = Callable[[], LazyCheckpoint]
"""Opens a checkpoint lazily; called once per stage, closed after it."""


def prompt_tokens(vocab_size: int, length: int = PROMPT_LENGTH) -> Tensor:
    """The fixed prompt: ``[1, length]`` token ids drawn from a seeded CPU generator."""
    generator = torch.Generator(device="cpu").manual_seed(PROMPT_SEED)
    return torch.randint(0, vocab_size, (1, length), generator=generator)


class EquivalenceReport(BaseModel):
    """What one comparison found; :attr:`problems` is empty when it passes."""

    reference: Literal["source checkpoint", "whole model"]
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


def _fetch(checkpoint: LazyCheckpoint, name: str) -> Tensor:
    if name not in checkpoint.names:
        files = ", ".join(str(p) for p in checkpoint.files)
        raise KeyError(f"{files}: no tensor {name!r}")
    return checkpoint.get(name)


class _Float32Staging:
    """One reused float32 buffer on the device that a stage's weights are cast or copied into.

    Why: on CPU, casting into fresh memory for every block costs four times the cast itself
    (page faults: 0.17 s against 0.04 s for one 4096 x 11008 tensor). Float32 tensors already on
    the device (a float32 source on CPU, memory-mapped) are used as they are. Only one stage's
    module may use the buffer at a time; each is dropped before the next is loaded.
    """

    def __init__(self, device: torch.device) -> None:
        self.buffer = torch.empty(0, dtype=torch.float32, device=device)
        self.device = self.buffer.device

    def _usable(self, tensor: Tensor) -> bool:
        return tensor.dtype == torch.float32 and tensor.device == self.device

    def stage(self, tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
        need = sum(t.numel() for t in tensors.values() if not self._usable(t))
        if self.buffer.numel() < need:
            self.buffer = torch.empty(0, dtype=torch.float32, device=self.device)
            self.buffer = torch.empty(need, dtype=torch.float32, device=self.device)
        staged: dict[str, Tensor] = {}
        offset = 0
        for name, tensor in tensors.items():
            if self._usable(tensor):
                staged[name] = tensor
                continue
            view = self.buffer[offset : offset + tensor.numel()].view(tensor.shape)
            staged[name] = view.copy_(tensor)
            offset += tensor.numel()
        return staged


def non_finite_count(tensor: Tensor) -> int:
    """How many NaN/Inf values ``tensor`` holds (``aminmax`` first: NaN and Inf propagate into
    it at memory speed; the exact count is taken only when it finds one)."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return 0
    low, high = torch.aminmax(tensor)
    if bool(torch.isfinite(low) & torch.isfinite(high)):
        return 0
    return int((~torch.isfinite(tensor)).sum())


def _load(
    module: nn.Module,
    opener: Opener,
    prefix: str,
    staging: _Float32Staging,
    non_finite: dict[str, int] | None = None,
) -> nn.Module:
    """``module`` (built on ``meta``) with the weights under ``prefix.``, float32, on the device;
    tensors holding NaN/Inf are counted into ``non_finite`` (by full name) when it is given."""
    with opener() as checkpoint:
        found = {name: _fetch(checkpoint, f"{prefix}.{name}") for name in module.state_dict()}
        if non_finite is not None:
            for name, tensor in found.items():
                if bad := non_finite_count(tensor):
                    non_finite[f"{prefix}.{name}"] = bad
        try:
            module.load_state_dict(staging.stage(found), strict=True, assign=True)
        except RuntimeError as exc:
            files = ", ".join(str(p) for p in checkpoint.files)
            raise ValueError(f"{files}: {prefix}: {str(exc).strip()[:500]}") from None
    return module.eval()


def _embedding_rows(
    opener: Opener,
    name: str,
    tokens: Tensor,
    device: torch.device,
    non_finite: dict[str, int] | None = None,
) -> Tensor:
    with opener() as checkpoint:
        table = _fetch(checkpoint, name)
        if non_finite is not None and (bad := non_finite_count(table)):
            non_finite[name] = bad
        rows = table[tokens]
    return rows.to(device, torch.float32)


def _project(
    opener: Opener, name: str, normed: Tensor, non_finite: dict[str, int] | None = None
) -> Tensor:
    """``normed @ W.T`` for the output matrix ``name``, cast to float32 a chunk at a time."""
    with opener() as checkpoint:
        weight = _fetch(checkpoint, name)
        if non_finite is not None and (bad := non_finite_count(weight)):
            non_finite[name] = bad
        chunks = [
            normed @ weight[start : start + OUTPUT_ROWS_PER_CHUNK].to(normed.device, normed.dtype).T
            for start in range(0, weight.shape[0], OUTPUT_ROWS_PER_CHUNK)
        ]
        del weight
    return torch.cat(chunks, dim=-1)


class _Streams:
    """The source's hidden state and the converted model's, advanced one stage at a time.

    The converted stage runs on ``[source; converted]`` (batch of two): the first row is the
    same-input comparison, the second the converted model's own forward. Without a source only
    the converted row exists.
    """

    def __init__(
        self,
        arch: StreamedArchitecture,
        source: Opener | None,
        converted: Opener,
        device: torch.device,
    ) -> None:
        self.arch, self.source, self.converted, self.device = arch, source, converted, device
        self.staging = _Float32Staging(device)
        self.errors: dict[str, float] = {}
        self.non_finite: dict[str, int] = {}
        """Converted tensors with NaN/Inf: proven here, not left to the attention kernel."""

    def _both(self, src: Tensor | None, conv: Tensor) -> Tensor:
        return conv if src is None else torch.cat([src, conv])

    def embed(self, tokens: Tensor) -> tuple[Tensor | None, Tensor]:
        name = self.arch.embedding
        conv = _embedding_rows(self.converted, name, tokens, self.device, self.non_finite)
        if self.source is None:
            return None, conv
        src = _embedding_rows(self.source, name, tokens, self.device)
        self.errors[name] = relative_error(conv, src)
        return src, conv

    def block(
        self, prefix: str, src: Tensor | None, conv: Tensor, positions: Any
    ) -> tuple[Tensor | None, Tensor]:
        src_out = None
        if self.source is not None and src is not None:
            module = _load(self.arch.new_block(), self.source, prefix, self.staging)
            src_out = self.arch.run_block(module, src, positions)
            del module
        module = _load(self.arch.new_block(), self.converted, prefix, self.staging, self.non_finite)
        out = self.arch.run_block(module, self._both(src, conv), positions)
        del module
        if src_out is None or src is None:
            return None, out
        self.errors[prefix] = relative_error(out[:1] - src, src_out - src)
        return src_out, out[1:]

    def logits(self, src: Tensor | None, conv: Tensor) -> tuple[Tensor | None, Tensor]:
        def project(opener: Opener, latents: Tensor, non_finite: dict[str, int] | None) -> Tensor:
            norm = _load(self.arch.new_norm(), opener, self.arch.norm, self.staging, non_finite)
            return _project(opener, self.arch.output, norm(latents), non_finite)

        out = project(self.converted, self._both(src, conv), self.non_finite)
        if self.source is None or src is None:
            return None, out
        src_out = project(self.source, src, None)
        self.errors["logits"] = relative_error(out[:1], src_out)
        return src_out, out[1:]


class Streamed(NamedTuple):
    """What one streamed run found."""

    source_logits: Tensor | None
    logits: Tensor
    stage_errors: dict[str, float]
    non_finite: dict[str, int]


@torch.no_grad()
def streamed_logits(
    arch: StreamedArchitecture,
    converted: Opener,
    device: torch.device,
    source: Opener | None = None,
    tokens: Tensor | None = None,
) -> Streamed:
    """Source logits (None without a source), converted logits, per-stage errors and the
    converted tensors holding NaN/Inf, streamed stage by stage."""
    tokens = prompt_tokens(arch.vocab_size) if tokens is None else tokens
    streams = _Streams(arch, source, converted, device)
    src, conv = streams.embed(tokens)
    positions = arch.positions(tokens.shape[1], device)
    for prefix in arch.trunk:
        src, conv = streams.block(prefix, src, conv, positions)
    if arch.heads:
        heads = [streams.block(prefix, src, conv, positions) for prefix in arch.heads]
        src = None if src is None else torch.stack([s for s, _ in heads if s is not None], -2)
        conv = torch.stack([c for _, c in heads], dim=-2)
    else:
        src = None if src is None else src[:, :, None]
        conv = conv[:, :, None]
    src_logits, conv_logits = streams.logits(src, conv)
    return Streamed(src_logits, conv_logits, streams.errors, streams.non_finite)


def _report(
    reference: Literal["source checkpoint", "whole model"],
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


def compare_to_source(
    arch: StreamedArchitecture, source: Opener, converted: Opener, device: torch.device
) -> EquivalenceReport:
    """The converted checkpoint against its source (see the module docstring)."""
    started = time.monotonic()
    tokens = prompt_tokens(arch.vocab_size)
    run = streamed_logits(arch, converted, device, source, tokens)
    assert run.source_logits is not None
    path_stages = len(arch.trunk) + 3  # embedding, trunk, one head, norm + output
    return _report(
        "source checkpoint",
        run.source_logits,
        run,
        STAGE_TOLERANCE * path_stages,
        tokens,
        device,
        started,
    )


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
