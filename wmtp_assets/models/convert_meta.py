"""Convert Meta's multi-token-prediction checkpoint (``7B_1T_4``, REFERENCE §1) into v2 layout.

Plan: read ``params.json`` into ``ModelArgs`` (vocabulary from the tokenizer where the file says
-1); open ``consolidated.pth`` memory-mapped with ``weights_only=True``; drop ``rope.freqs``
(the model recomputes ``freqs_cis`` at run time); check names and shapes against
``expected_state_dict_shapes`` and every tensor being float, all BEFORE writing anything; then
stream each tensor through the range-checked fp16 cast into ``safetensors/model.safetensors``
with Meta key names, one converted tensor in memory at a time.

Publishing follows :func:`~wmtp_assets.models.artifact.publish_weights` (the previous good
weights stay until the new ones are complete and fsynced; ``SHA256SUMS`` is removed, then
rewritten); then ``configs/params.json`` (the source bytes), ``configs/meta_adapter.yaml`` and
``metadata.json``. The artifact's lock is held throughout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from wmtp_assets.files.atomic import atomic_copy, atomic_write_text, sweep_stale_tmp
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.files.lock import artifact_lock
from wmtp_assets.models.artifact import SourceInfo, TokenizerInfo, write_metadata
from wmtp_assets.models.checkpoint_reader import open_checkpoint
from wmtp_assets.models.fp16_cast import (
    ConversionReport,
    publish_float16_weights,
    require_float_sources,
    stage_float16_weights,
)
from wmtp_assets.models.meta_mtp import ModelArgs, check_state_dict
from wmtp_assets.models.safetensors_writer import stored_dtype
from wmtp_assets.models.tokenizer_files import tokenizer_info

MODEL_NAME = "meta-llama-mtp"
CHECKPOINT = "7B_1T_4/consolidated.pth"
PARAMS = "7B_1T_4/params.json"
TOKENIZER = "tokenizer.model"
DROPPED_KEYS = ("rope.freqs",)
FSDP_WRAP_POLICY = "wmtp_assets.models.meta_mtp.fsdp_wrap_policy"


class MetaConversionReport(ConversionReport):
    """The conversion report plus the model's shape as converted."""

    n_future_tokens: int
    n_layers: int


def meta_adapter(args: ModelArgs, dtype: str) -> dict[str, Any]:
    """``configs/meta_adapter.yaml``: the model's dimensions as training code reads them."""
    return {
        "dim": args.dim,
        "num_layers": args.n_layers,
        "n_heads": args.n_heads,
        "n_kv_heads": args.kv_heads,
        "vocab_size": args.vocab_size,
        "n_future_tokens": args.n_future_tokens,
        "intermediate_size": args.ffn_hidden_dim,
        "rope_theta": args.rope_theta,
        "norm_eps": args.norm_eps,
        "dtype": dtype,
    }


def _tokenizer_info(path: Path) -> TokenizerInfo:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tokenizer.model not found (needed for its vocab size)")
    return tokenizer_info(path)


def convert_meta_mtp(
    raw_dir: Path,
    dirs: ModelDirs,
    provenance: Mapping[str, Any] | None,
    tokenizer: TokenizerInfo | None,
    code_version: str,
    progress: Callable[[str], None] | None = None,
    *,
    lock_timeout_s: float = 60.0,
) -> MetaConversionReport:
    """Convert ``raw_dir`` (the Hub repo's layout) into ``dirs`` (see the module docstring).

    ``provenance`` is the raw folder's ``SOURCE.json`` content (a ``SourceInfo``; when None the
    source is recorded as ``generated``). ``tokenizer`` describes the model's tokenizer; when
    None it is read from ``raw_dir/tokenizer.model``. Waits up to ``lock_timeout_s`` for a
    concurrent conversion of the same artifact, then raises ``ArtifactLockedError``.
    """
    started = time.monotonic()
    checkpoint_path, params_path = raw_dir / CHECKPOINT, raw_dir / PARAMS
    with artifact_lock(dirs.root, timeout_s=lock_timeout_s):
        for folder in (dirs.root, dirs.safetensors, dirs.configs):
            sweep_stale_tmp(folder)
        tokenizer = tokenizer or _tokenizer_info(raw_dir / TOKENIZER)
        source = SourceInfo.model_validate(
            {"architecture": "meta_mtp.Transformer", "kind": "generated", **(provenance or {})}
        )
        args = ModelArgs.from_params_json(params_path, vocab_size=tokenizer.vocab_size)
        with open_checkpoint(checkpoint_path, notify=progress) as checkpoint:
            dropped = [n for n in checkpoint.names if n in DROPPED_KEYS]
            names = [n for n in checkpoint.names if n not in DROPPED_KEYS]
            specs = {n: checkpoint.spec(n) for n in names}
            check_state_dict(
                args, {n: s.shape for n, s in specs.items()}, source=str(checkpoint_path)
            )
            require_float_sources(specs, checkpoint_path)
            weights = stage_float16_weights(
                checkpoint, names, dirs.weights, {"format": "pt"}, progress
            )
        publish_float16_weights(weights, dirs)
        dtype = stored_dtype(dirs.weights)
        atomic_copy(params_path, dirs.configs / "params.json")
        atomic_write_text(
            dirs.configs / "meta_adapter.yaml",
            yaml.safe_dump(meta_adapter(args, dtype), sort_keys=True),
        )
        write_metadata(
            dirs,
            {"safetensors/model.safetensors": weights.staged.sha256},
            model_name=MODEL_NAME,
            implementation="pure_pytorch",
            n_params=weights.cast.n_params,
            dtype=dtype,
            source=source,
            safetensors={
                "key_names": "meta",
                "freqs_cis_handling": "runtime_computed",
                "dropped_keys": dropped,
                "flushed_to_zero": weights.cast.flushed_to_zero,
            },
            distributed={"fsdp_compatible": True, "wrap_policy": FSDP_WRAP_POLICY},
            tokenizer=tokenizer,
            code_version=code_version,
        )
    return MetaConversionReport.model_validate(
        {
            **ConversionReport.fields_from(weights, dirs, dtype, dropped, started),
            "n_future_tokens": args.n_future_tokens,
            "n_layers": args.n_layers,
        }
    )
