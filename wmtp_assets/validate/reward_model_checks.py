"""Pure checks of a Llama reward model (Starling-RM-7B-alpha; no Dagster): what differs from
the other models' checks in ``model_checks``, whose format-free checks (SHA256, dtype, finite
values) it shares.

Its tensors are a decoder under the prefix the upstream file uses plus ``v_head.weight``
(``models.reward_llama``), so the expected keys come from ``config.json`` and that prefix; its
forward output is a value per position, and the reward the one at the card's position.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from wmtp_assets.files.hashing import read_sha256sums
from wmtp_assets.files.json_files import read_json_object
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.artifact import WEIGHTS, seal_name
from wmtp_assets.models.checkpoint_reader import open_checkpoint
from wmtp_assets.models.convert_hf_llama import DROPPED_SUFFIX
from wmtp_assets.models.convert_reward_llama import CHECKPOINT, read_layout
from wmtp_assets.models.reward_llama import (
    LlamaRewardArchitecture,
    RewardLayoutError,
    decoder_prefix,
    read_reward_config,
    reward_positions,
)
from wmtp_assets.models.shapes import diff_shapes, llama_reward_shapes
from wmtp_assets.models.streamed_forward import LOGITS, trace_checkpoint
from wmtp_assets.sources.provenance import read_provenance
from wmtp_assets.validate import forward_equivalence as fe
from wmtp_assets.validate.model_checks import resolve_device
from wmtp_assets.validate.outcome import CheckOutcome

_SHOWN = 20


def _shapes_of(path: Path) -> dict[str, tuple[int, ...]]:
    with open_checkpoint(path) as opened:
        return {name: opened.spec(name).shape for name in opened.names}


def _shapes_outcome(
    path: Path, config_path: Path, found: Mapping[str, Sequence[int]]
) -> CheckOutcome:
    """``found`` against the reward model ``config_path`` implies under ``found``'s prefix."""
    try:
        prefix = decoder_prefix(found.keys(), str(path))
    except RewardLayoutError as exc:
        return CheckOutcome.fail(str(exc), file=str(path), tensors=len(found))
    config = read_reward_config(config_path)
    diff = diff_shapes(llama_reward_shapes(config, prefix, str(config_path)), found)
    if diff:
        return CheckOutcome.fail(
            f"{path}: {len(found)} tensors, against {config_path} with the decoder under "
            f"{prefix!r}: {len(diff.missing)} missing (first {diff.missing[:3]}), "
            f"{len(diff.unexpected)} unexpected (first {diff.unexpected[:3]}), "
            f"{len(diff.mis_shaped)} mis-shaped",
            file=str(path),
            tensors=len(found),
            found_first=sorted(found)[:_SHOWN],
            missing=diff.missing[:_SHOWN],
            unexpected=diff.unexpected[:_SHOWN],
            mis_shaped={n: f"expected {e}, found {f}" for n, e, f in diff.mis_shaped[:_SHOWN]},
        )
    return CheckOutcome.ok(
        f"{len(found)} tensors match {config_path.name}, decoder under {prefix!r} + v_head",
        decoder_prefix=prefix,
    )


def raw_keys_match_config(raw_dir: Path) -> CheckOutcome:
    """The upstream ``pytorch_model.bin`` (read from its own index: the pickle, no tensor bytes)
    holds a Llama reward model in a layout the conversion accepts, with exactly the tensors
    ``config.json`` implies (what the conversion drops aside: ``rotary_emb.inv_freq`` buffers,
    the card module's proven copies of the chat model); else the keys found."""
    path = raw_dir / CHECKPOINT
    try:
        _, card_entries = read_layout(path)
    except RewardLayoutError as exc:
        return CheckOutcome.fail(str(exc), file=str(path))
    dropped = set(card_entries)
    found = _shapes_of(path)
    kept = {n: s for n, s in found.items() if not n.endswith(DROPPED_SUFFIX) and n not in dropped}
    return _shapes_outcome(path, raw_dir / "config.json", kept)


def keys_and_shapes_match_config(dirs: ModelDirs) -> CheckOutcome:
    """The header's tensors are exactly the decoder (under the upstream prefix) and ``v_head``
    [1, hidden] that ``configs/config.json`` implies, with the same shapes."""
    return _shapes_outcome(dirs.weights, dirs.configs / "config.json", _shapes_of(dirs.weights))


def stored_vocab_size(dirs: ModelDirs) -> int:
    """The vocabulary size the stored config gives the model."""
    return int(read_reward_config(dirs.configs / "config.json")["vocab_size"])


def stored_architecture(dirs: ModelDirs) -> LlamaRewardArchitecture:
    """The streamed forward of the stored model: its config, the prefix its keys use."""
    names = _shapes_of(dirs.weights).keys()
    config = read_reward_config(dirs.configs / "config.json")
    return LlamaRewardArchitecture(config, decoder_prefix(names, str(dirs.weights)))


def configs_agree(dirs: ModelDirs) -> CheckOutcome:
    """``configs/config.json`` and ``metadata.json`` describe the same model: the parameter
    count the config implies and the stored dtype."""
    metadata = read_json_object(dirs.metadata, "a metadata.json object")
    config = read_reward_config(dirs.configs / "config.json")
    prefix = str(metadata["safetensors"]["decoder_prefix"])
    shapes = llama_reward_shapes(config, prefix, str(dirs.configs / "config.json"))
    n_params = sum(torch.Size(s).numel() for s in shapes.values())
    found = {"n_params": metadata.get("n_params"), "dtype": metadata.get("dtype")}
    expected = {"n_params": n_params, "dtype": config.get("torch_dtype")}
    if found != expected:
        return CheckOutcome.fail(
            f"{dirs.metadata}: says {found}, {dirs.configs / 'config.json'} implies {expected}",
            expected=expected,
            found=found,
        )
    return CheckOutcome.ok(f"config.json and metadata.json agree: {n_params:,} parameters")


def forward_pass(dirs: ModelDirs, device: str) -> CheckOutcome:
    """On ``device``, the stored float16 reward model gives its source's values (``v_head`` of
    every position's last hidden state, so the reward at the last non-pad position) within
    float16 rounding, block by block and end to end, streamed one block at a time through
    transformers' Llama layers. The source side is the trace the conversion recorded in
    ``proof/`` (bound to these weights' and raw files' SHA256) or, without a valid one, the
    upstream ``pytorch_model.bin`` streamed now."""
    started = time.monotonic()
    target = resolve_device(device)
    arch = stored_architecture(dirs)
    source = dirs.raw / CHECKPOINT
    if not source.is_file():
        raise FileNotFoundError(2, "the forward check compares with it", str(source))
    sums = read_sha256sums(dirs.sha256sums) if dirs.sha256sums.is_file() else {}
    recorded_files = read_provenance(dirs.raw)
    trace, why_not = fe.bound_trace(
        dirs.source_trace,
        sums.get(seal_name(WEIGHTS)),
        {r.path: r.sha256 for r in recorded_files.files} if recorded_files else None,
    )
    recorded = trace is not None
    if trace is None:
        trace = trace_checkpoint(arch, lambda: open_checkpoint(source), target)
    report, run = fe.trace_comparison(
        arch, trace, lambda: open_checkpoint(dirs.weights), target, started, recorded
    )
    source_values = trace.states[LOGITS][:, :, 0, 0].double()
    stored_values = run.logits[:, :, 0, 0].double().cpu()
    position = int(reward_positions(trace.tokens)[0])
    source_reward = float(source_values[0, position])
    stored_reward = float(stored_values[0, position])
    # the values' relative L2 bound, applied to one of them
    bound = report.logits_tolerance * float(torch.linalg.vector_norm(source_values))
    problems = list(report.problems)
    if not abs(stored_reward - source_reward) <= bound:
        problems.append(
            f"reward {stored_reward:.6g} != source {source_reward:.6g} (+- {bound:.2e})"
        )
    details: dict[str, Any] = {
        "reference": report.reference,
        "device": report.device,
        "prompt": report.prompt,
        "reward_position": position,
        "source_reward": source_reward,
        "stored_reward": stored_reward,
        "reward_tolerance": bound,
        "values_rel_error": report.logits_rel_error,
        "values_tolerance": report.logits_tolerance,
        "stage_errors": report.stage_errors,
        "stage_tolerance": report.stage_tolerance,
        "seconds": time.monotonic() - started,
    }
    if why_not:
        details["source_traced_now_because"] = why_not
    against = f"the source's trace {dirs.source_trace.name}" if recorded else str(source)
    if problems:
        return CheckOutcome.fail(
            f"{dirs.weights} vs {against} on {target}: " + "; ".join(problems), **details
        )
    worst = report.worst_stage
    assert worst is not None, "a traced comparison has stage errors"
    return CheckOutcome.ok(
        f"reward {stored_reward:.6g} on {target} = {against}'s {source_reward:.6g} "
        f"(|diff| {abs(stored_reward - source_reward):.1e} <= {bound:.1e}); values relative "
        f"error {report.logits_rel_error:.1e}, every stage within "
        f"{report.stage_tolerance:.1e} (worst {worst[0]} {worst[1]:.1e})",
        **details,
    )
