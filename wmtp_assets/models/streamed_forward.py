"""A checkpoint's forward pass one stage at a time, and the trace a source leaves.

A stage is the embedding rows of the prompt, one trunk block, one prediction head (on the
trunk output) or the shared norm + output projection. Running stage by stage keeps memory at
one block in float32 whatever the model's size, and lets a caller that already reads every
tensor (the float16 conversion) run the forward in the same pass: :class:`TraceBuilder` takes
tensors in :attr:`TraceBuilder.order` (stage order) and runs each stage as soon as it has all
of its tensors.

The result, a :class:`SourceTrace`, is what the source computes on the fixed prompt
(:func:`prompt_tokens`): every stage's output and the logits, in float32 (a few MB at 7B).
``validate.forward_equivalence`` compares a converted checkpoint with it stage by stage, so the
27 GB source need not be read again to prove the conversion kept its function.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from safetensors import safe_open
from safetensors.torch import save
from torch import Tensor, nn

from wmtp_assets.models.checkpoint_reader import LazyCheckpoint
from wmtp_assets.models.streamed_architectures import StreamedArchitecture

PROMPT_LENGTH = 8
PROMPT_SEED = 0
OUTPUT_ROWS_PER_CHUNK = 4096
"""Rows of the output matrix cast to float32 at a time (16 MB at dim 1024, 64 MB at 4096)."""
EMBEDDING, LOGITS = "embedding", "logits"
TRACE_BINDING, TRACE_SOURCE, TRACE_WEIGHTS = "wmtp_trace", "source_sha256", "weights_sha256"

Opener = Callable[[], LazyCheckpoint]
"""Opens a checkpoint lazily; the streaming forward opens it once per pass."""


def prompt_tokens(vocab_size: int, length: int = PROMPT_LENGTH) -> Tensor:
    """The fixed prompt: ``[1, length]`` token ids drawn from a seeded CPU generator."""
    generator = torch.Generator(device="cpu").manual_seed(PROMPT_SEED)
    return torch.randint(0, vocab_size, (1, length), generator=generator)


def non_finite_count(tensor: Tensor) -> int:
    """How many NaN/Inf values ``tensor`` holds (``aminmax`` first: NaN and Inf propagate into
    it at memory speed; the exact count is taken only when it finds one)."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return 0
    low, high = torch.aminmax(tensor)
    if bool(torch.isfinite(low) & torch.isfinite(high)):
        return 0
    return int((~torch.isfinite(tensor)).sum())


@dataclass(frozen=True)
class Stage:
    """One step of the streamed forward: its name (``embedding``, a block prefix, ``logits``),
    what it is, and the full names of the tensors it reads."""

    name: str
    kind: Literal["embedding", "trunk", "head", "logits"]
    tensors: tuple[str, ...]


def stages(arch: StreamedArchitecture) -> list[Stage]:
    """The stages of ``arch`` in the order the forward runs them."""
    block_keys = list(arch.new_block().state_dict())
    norm_keys = [f"{arch.norm}.{k}" for k in arch.new_norm().state_dict()]

    def block(prefix: str, kind: Literal["trunk", "head"]) -> Stage:
        return Stage(prefix, kind, tuple(f"{prefix}.{k}" for k in block_keys))

    return [
        Stage(EMBEDDING, "embedding", (arch.embedding,)),
        *(block(prefix, "trunk") for prefix in arch.trunk),
        *(block(prefix, "head") for prefix in arch.heads),
        Stage(LOGITS, "logits", (*norm_keys, arch.output)),
    ]


class Float32Staging:
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


def load_module(
    module: nn.Module,
    tensors: Mapping[str, Tensor],
    prefix: str,
    staging: Float32Staging,
    label: str,
) -> nn.Module:
    """``module`` (built on ``meta``) with ``tensors`` (full names under ``prefix.``), float32, on
    the device; a wrong shape or name is a ``ValueError`` naming ``label`` (the file)."""
    found = {name.removeprefix(f"{prefix}."): t for name, t in tensors.items()}
    try:
        module.load_state_dict(staging.stage(found), strict=True, assign=True)
    except RuntimeError as exc:
        raise ValueError(f"{label}: {prefix}: {str(exc).strip()[:500]}") from None
    return module.eval()


def project(weight: Tensor, normed: Tensor) -> Tensor:
    """``normed @ weight.T``, the weight cast to float32 a chunk of rows at a time."""
    chunks = [
        normed @ weight[start : start + OUTPUT_ROWS_PER_CHUNK].to(normed.device, normed.dtype).T
        for start in range(0, weight.shape[0], OUTPUT_ROWS_PER_CHUNK)
    ]
    return torch.cat(chunks, dim=-1)


class StageRunner:
    """Runs one stage of ``arch`` on a hidden state, given the stage's tensors."""

    def __init__(self, arch: StreamedArchitecture, device: torch.device, seqlen: int) -> None:
        self.arch, self.device = arch, device
        self.staging = Float32Staging(device)
        self.positions = arch.positions(seqlen, device)

    def embed(self, tensors: Mapping[str, Tensor], tokens: Tensor) -> Tensor:
        return tensors[self.arch.embedding][tokens].to(self.device, torch.float32)

    def block(
        self, stage: Stage, tensors: Mapping[str, Tensor], hidden: Tensor, label: str
    ) -> Tensor:
        module = load_module(self.arch.new_block(), tensors, stage.name, self.staging, label)
        out = self.arch.run_block(module, hidden, self.positions)
        del module
        return out

    def logits(self, tensors: Mapping[str, Tensor], latents: Tensor, label: str) -> Tensor:
        norm_tensors = {n: t for n, t in tensors.items() if n != self.arch.output}
        norm = load_module(self.arch.new_norm(), norm_tensors, self.arch.norm, self.staging, label)
        return project(tensors[self.arch.output], norm(latents))


def stage_tensors(
    checkpoint: LazyCheckpoint, arch: StreamedArchitecture
) -> Iterator[tuple[Stage, dict[str, Tensor]]]:
    """Each stage with its tensors read from ``checkpoint``; their mapped pages are released
    once the caller is done with the stage (asks for the next)."""
    for stage in stages(arch):
        missing = [n for n in stage.tensors if n not in checkpoint.names]
        if missing:
            files = ", ".join(str(p) for p in checkpoint.files)
            raise KeyError(f"{files}: no tensor {missing[0]!r}")
        tensors = {name: checkpoint.get(name) for name in stage.tensors}
        yield stage, tensors
        for name, tensor in tensors.items():
            checkpoint.release(tensor, name)


class SourceTrace(NamedTuple):
    """What a source checkpoint computes on ``tokens``: each stage's output (float32, CPU)."""

    tokens: Tensor
    states: dict[str, Tensor]

    def to_bytes(self, metadata: Mapping[str, str]) -> bytes:
        """As safetensors (the bytes depend only on the trace and ``metadata``)."""
        tensors = {"tokens": self.tokens.contiguous()}
        tensors |= {f"state.{name}": t.contiguous() for name, t in self.states.items()}
        # one metadata key: the library writes several in hash-map order, not reproducibly
        return save(tensors, metadata={TRACE_BINDING: json.dumps(dict(sorted(metadata.items())))})

    @classmethod
    def load(cls, path: Path) -> tuple[SourceTrace, dict[str, str]]:
        """The trace and the metadata it was saved with."""
        with safe_open(path, framework="pt") as fh:
            metadata = json.loads((fh.metadata() or {}).get(TRACE_BINDING, "{}"))
            names = list(fh.keys())
            tokens = fh.get_tensor("tokens")
            states = {n.removeprefix("state."): fh.get_tensor(n) for n in names if n != "tokens"}
        return cls(tokens, states), metadata


def trace_metadata(source_sha256: Mapping[str, str], weights_sha256: str) -> dict[str, str]:
    """What a trace is bound to: the raw files it was computed from (path -> SHA256) and the
    converted weights computed in the same pass."""
    return {
        TRACE_SOURCE: json.dumps(dict(sorted(source_sha256.items()))),
        TRACE_WEIGHTS: weights_sha256,
    }


class TraceBuilder:
    """Builds a :class:`SourceTrace` from tensors fed one at a time in :attr:`order`.

    A stage runs when the last of its tensors arrives; :meth:`feed` returns the names no later
    stage reads (the caller may release their pages). Tensors fed out of order are held (as the
    caller's tensors: mapped pages, not copies) until their stage can run.
    """

    def __init__(
        self,
        arch: StreamedArchitecture,
        device: torch.device,
        label: str,
        tokens: Tensor | None = None,
    ) -> None:
        self.arch, self.label = arch, label
        self.tokens = prompt_tokens(arch.vocab_size) if tokens is None else tokens
        self.runner = StageRunner(arch, device, self.tokens.shape[1])
        self.stages = stages(arch)
        self.order = list(dict.fromkeys(n for s in self.stages for n in s.tensors))
        self._held: dict[str, Tensor] = {}
        self._fed: set[str] = set()
        self._next = 0
        self._states: dict[str, Tensor] = {}
        self._trunk_out: Tensor | None = None

    @property
    def done(self) -> bool:
        return self._next == len(self.stages)

    def feed(self, name: str, tensor: Tensor) -> list[str]:
        """Take ``name``; run every stage now complete; return the names released."""
        if name not in self.order:
            return [name]
        self._held[name] = tensor
        self._fed.add(name)
        released: list[str] = []
        while not self.done and all(n in self._held for n in self.stages[self._next].tensors):
            self._run(self.stages[self._next])
            self._next += 1
            later = {n for s in self.stages[self._next :] for n in s.tensors}
            for held in [n for n in self._held if n not in later]:
                del self._held[held]
                released.append(held)
        return released

    @torch.no_grad()
    def _run(self, stage: Stage) -> None:
        tensors = {n: self._held[n] for n in stage.tensors}
        if stage.kind == "embedding":
            hidden = self.runner.embed(tensors, self.tokens)
            self._trunk_out = hidden
        elif stage.kind == "trunk":
            assert self._trunk_out is not None
            hidden = self.runner.block(stage, tensors, self._trunk_out, self.label)
            self._trunk_out = hidden
        elif stage.kind == "head":
            assert self._trunk_out is not None
            hidden = self.runner.block(stage, tensors, self._trunk_out, self.label)
        else:
            heads = [self._states[s.name] for s in self.stages if s.kind == "head"]
            assert self._trunk_out is not None
            latents = torch.stack(heads, -2) if heads else self._trunk_out.cpu()[:, :, None]
            hidden = self.runner.logits(tensors, latents.to(self.runner.device), self.label)
        self._states[stage.name] = hidden.float().cpu()

    def result(self) -> SourceTrace:
        if not self.done:
            missing = [n for n in self.order if n not in self._fed]
            raise ValueError(f"{self.label}: the forward trace never got {missing[:5]}")
        return SourceTrace(self.tokens, dict(self._states))


def trace_checkpoint(
    arch: StreamedArchitecture, opener: Opener, device: torch.device, tokens: Tensor | None = None
) -> SourceTrace:
    """Stream ``opener``'s checkpoint once, stage by stage, into its :class:`SourceTrace`."""
    with opener() as checkpoint:
        label = ", ".join(str(p) for p in checkpoint.files)
        builder = TraceBuilder(arch, device, label, tokens)
        for _stage, tensors in stage_tensors(checkpoint, arch):
            for name, tensor in tensors.items():
                builder.feed(name, tensor)
    return builder.result()
