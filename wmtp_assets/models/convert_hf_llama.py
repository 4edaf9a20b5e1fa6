"""Convert a Hugging Face Llama checkpoint (Sheared-LLaMA, REFERENCE §2) into the v2 artifact.

Plan: read ``config.json``; open the shards its index names (or one weights file; ``.bin`` or
``.safetensors``) without reading tensor bytes; drop ``*.rotary_emb.inv_freq`` buffers old
transformers versions saved; check names and shapes against what the config implies and every
source tensor being float, all BEFORE writing anything; then stream every tensor through the
fp16 cast (range-checked) into one ``safetensors/model.safetensors`` with HF key names.

``safetensors/`` is left a complete Hugging Face model folder (weights, ``config.json`` with
the stored dtype, ``generation_config.json`` if upstream has one, tokenizer files), because
downstream training calls ``from_pretrained`` on it. Publishing follows
:func:`~wmtp_assets.models.artifact.publish_weights`; the artifact's lock is held throughout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from wmtp_assets.files.atomic import atomic_copy, atomic_write_json, sweep_stale_tmp
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.files.lock import artifact_lock
from wmtp_assets.models.artifact import SourceInfo, write_metadata
from wmtp_assets.models.checkpoint_reader import LazyCheckpoint, open_hf_shards
from wmtp_assets.models.fp16_cast import (
    ConversionReport,
    publish_float16_weights,
    require_float_sources,
    stage_float16_weights,
)
from wmtp_assets.models.hf_llama import HFConfigError, hf_llama_shapes
from wmtp_assets.models.safetensors_writer import stored_dtype
from wmtp_assets.models.tokenizer_files import tokenizer_info

MODEL_NAME = "ref-sheared-llama-2.7b"
SHARED_TOKENIZER_WITH = "meta-llama-mtp"
REQUIRED_TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json")
OPTIONAL_TOKENIZER_FILES = ("special_tokens_map.json", "tokenizer.json")
DROPPED_SUFFIX = ".rotary_emb.inv_freq"


class HfCheckpointMismatchError(ValueError):
    """Checkpoint tensors that do not match the config: listed by name, per kind."""

    def __init__(
        self,
        source: str,
        missing: list[str],
        unexpected: list[str],
        mis_shaped: dict[str, tuple[tuple[int, ...], tuple[int, ...]]],
        files: Mapping[str, str],
    ) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.mis_shaped = mis_shaped
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {missing[:20]}")
        if unexpected:
            shown = [f"{n} (in {files[n]})" for n in unexpected[:20]]
            parts.append(f"unexpected {len(unexpected)}: {shown}")
        if mis_shaped:
            shown = [
                f"{n} (in {files[n]}) is {a}, config implies {e}"
                for n, (a, e) in list(mis_shaped.items())[:20]
            ]
            parts.append(f"mis-shaped {len(mis_shaped)}: {shown}")
        super().__init__(f"{source}: tensors do not match config.json; " + "; ".join(parts))


class HfLlamaConversionReport(ConversionReport):
    """The conversion report plus the tokenizer files copied into the artifact."""

    tokenizer_files: list[str]


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HFConfigError(f"{path}: not a readable JSON config ({exc})") from exc
    if not isinstance(config, dict):
        raise HFConfigError(f"{path}: expected a JSON object")
    if "LlamaForCausalLM" not in (config.get("architectures") or []):
        raise HFConfigError(
            f"{path}: architectures {config.get('architectures')!r} does not include "
            "LlamaForCausalLM, the only layout this conversion knows"
        )
    return config


def _validate(
    checkpoint: LazyCheckpoint, expected: Mapping[str, tuple[int, ...]], source: str
) -> tuple[list[str], list[str]]:
    """Return (names to write, dropped names), or raise naming every mismatch."""
    dropped = [n for n in checkpoint.names if n.endswith(DROPPED_SUFFIX)]
    keep = [n for n in checkpoint.names if not n.endswith(DROPPED_SUFFIX)]
    specs = {n: checkpoint.spec(n) for n in keep}
    mis_shaped = {
        n: (specs[n].shape, tuple(expected[n]))
        for n in keep
        if n in expected and specs[n].shape != tuple(expected[n])
    }
    missing = sorted(set(expected) - set(keep))
    unexpected = sorted(set(keep) - set(expected))
    if missing or unexpected or mis_shaped:
        files = {n: checkpoint.source_of(n).name for n in keep}
        raise HfCheckpointMismatchError(source, missing, unexpected, mis_shaped, files)
    require_float_sources(specs, source)
    return keep, dropped


def _tokenizer_files(folder: Path) -> list[Path]:
    missing = [n for n in REQUIRED_TOKENIZER_FILES if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: tokenizer files missing: {missing}")
    names = REQUIRED_TOKENIZER_FILES + OPTIONAL_TOKENIZER_FILES
    return [folder / n for n in names if (folder / n).is_file()]


def convert_hf_llama(
    raw_dir: Path,
    dirs: ModelDirs,
    provenance: Mapping[str, Any] | None,
    tokenizer_dir: Path | None,
    reference_tokenizer_sha256: str | None,
    code_version: str,
    progress: Callable[[str], None] | None = None,
    *,
    lock_timeout_s: float = 60.0,
) -> HfLlamaConversionReport:
    """Convert the HF Llama checkpoint in ``raw_dir`` into ``dirs`` (see the module docstring).

    ``provenance`` is the raw folder's ``SOURCE.json`` content (a ``SourceInfo``; when None the
    source is recorded as ``generated``). ``tokenizer_dir`` holds the tokenizer files (default
    ``raw_dir``); ``reference_tokenizer_sha256`` is the Meta MTP tokenizer's SHA256, recorded
    beside this model's so a check can prove they are shared. Waits up to ``lock_timeout_s``
    for a concurrent conversion of the same artifact, then raises ``ArtifactLockedError``.
    """
    started = time.monotonic()
    config_path = raw_dir / "config.json"
    tokenizer_dir = raw_dir if tokenizer_dir is None else tokenizer_dir
    with artifact_lock(dirs.root, timeout_s=lock_timeout_s):
        for folder in (dirs.root, dirs.safetensors, dirs.configs, dirs.tokenizer):
            sweep_stale_tmp(folder)
        config = _read_config(config_path)
        expected = hf_llama_shapes(config, source=str(config_path))
        tokenizer_files = _tokenizer_files(tokenizer_dir)
        tokenizer = tokenizer_info(tokenizer_dir / "tokenizer.model").model_copy(
            update={"shared_with_sha256": reference_tokenizer_sha256}
        )
        source = SourceInfo.model_validate(
            {"architecture": "LlamaForCausalLM", "kind": "generated", **(provenance or {})}
        )
        with open_hf_shards(raw_dir, notify=progress) as checkpoint:
            names, dropped = _validate(checkpoint, expected, str(raw_dir))
            source_files = sorted(p.name for p in checkpoint.files)
            weights = stage_float16_weights(
                checkpoint, names, dirs.weights, {"format": "pt"}, progress
            )
        publish_float16_weights(weights, dirs)
        dtype = stored_dtype(dirs.weights)
        stored_config = {**config, "torch_dtype": dtype}
        if "dtype" in config:
            stored_config["dtype"] = dtype
        atomic_write_json(dirs.configs / "config.json", stored_config)
        atomic_write_json(dirs.safetensors / "config.json", stored_config)
        if (raw_dir / "generation_config.json").is_file():
            atomic_copy(
                raw_dir / "generation_config.json", dirs.safetensors / "generation_config.json"
            )
        for path in tokenizer_files:
            atomic_copy(path, dirs.tokenizer / path.name)
            atomic_copy(path, dirs.safetensors / path.name)
        write_metadata(
            dirs,
            {"safetensors/model.safetensors": weights.staged.sha256},
            model_name=MODEL_NAME,
            implementation="hf_llama",
            n_params=weights.cast.n_params,
            dtype=dtype,
            source=source,
            safetensors={
                "key_names": "huggingface",
                "dropped_keys": dropped,
                "flushed_to_zero": weights.cast.flushed_to_zero,
                "source_files": source_files,
            },
            tokenizer=tokenizer,
            tokenizer_shared_with=SHARED_TOKENIZER_WITH,
            code_version=code_version,
        )
    return HfLlamaConversionReport.model_validate(
        {
            **ConversionReport.fields_from(weights, dirs, dtype, dropped, started),
            "tokenizer_files": [p.name for p in tokenizer_files],
        }
    )
