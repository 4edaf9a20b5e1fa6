"""What is Hugging Face's in converting a Llama checkpoint (Sheared-LLaMA, REFERENCE §2).

``config.json`` gives the expected tensors and must agree with the shards and the tokenizer
(``upstream_consistency``); the shards its index names (or one weights file;
``.bin`` or ``.safetensors``) are merged into one file with HF key names; the
``*.rotary_emb.inv_freq`` buffers old transformers versions saved are dropped. ``safetensors/``
is left a complete Hugging Face model folder (weights, ``config.json`` with the stored dtype,
``generation_config.json`` if upstream has one, tokenizer files), because downstream training
calls ``from_pretrained`` on it; so is the model folder itself (``hf_folder``). The tokenizer
files are generated from upstream's ``tokenizer.model`` (``tokenizer_files``: with a proven
``tokenizer.json``), not copied: upstream's configs load a tokenizer whose ids differ from
SentencePiece's under transformers 5. The rest is :mod:`wmtp_assets.models.fp16_conversion`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wmtp_assets.files.atomic import json_bytes
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.artifact import TokenizerInfo
from wmtp_assets.models.checkpoint_reader import open_hf_shards
from wmtp_assets.models.fp16_conversion import (
    Float16Outcome,
    Float16Plan,
    Progress,
    convert_to_float16,
    source_info,
)
from wmtp_assets.models.hf_folder import root_configs
from wmtp_assets.models.hf_llama import read_llama_config
from wmtp_assets.models.shapes import hf_llama_shapes
from wmtp_assets.models.streamed_architectures import HFLlamaArchitecture
from wmtp_assets.models.tokenizer_files import tokenizer_folder_files, tokenizer_info
from wmtp_assets.models.upstream_consistency import hf_llama_contradictions

MODEL_NAME = "ref-sheared-llama-2.7b"
ARCHITECTURE = "LlamaForCausalLM"
SHARED_TOKENIZER_WITH = "meta-llama-mtp"
DROPPED_SUFFIX = ".rotary_emb.inv_freq"


def hf_llama_plan(
    raw_dir: Path,
    dirs: ModelDirs,
    provenance: Mapping[str, Any] | None,
    tokenizer_dir: Path | None,
    reference_tokenizer_sha256: str | None,
) -> Float16Plan:
    """The conversion of ``raw_dir`` into ``dirs``, checked, unwritten.

    ``tokenizer_dir`` holds the tokenizer files (default ``raw_dir``);
    ``reference_tokenizer_sha256`` is the Meta MTP tokenizer's SHA256, recorded beside this
    model's so a check can prove they are shared.
    """
    config_path = raw_dir / "config.json"
    tokenizer_dir = raw_dir if tokenizer_dir is None else tokenizer_dir
    config = read_llama_config(config_path)
    expected = hf_llama_shapes(config, source=str(config_path))
    tokenizer_model = tokenizer_dir / "tokenizer.model"
    tokenizer = shared_tokenizer(tokenizer_model, reference_tokenizer_sha256)

    def configs(dtype: str) -> dict[Path, bytes | Path]:
        both = (dirs.configs, dirs.safetensors)
        files = config_and_tokenizer_files(
            config, dtype, tokenizer_model, both, (dirs.tokenizer, dirs.safetensors)
        )
        if (raw_dir / "generation_config.json").is_file():
            files[dirs.safetensors / "generation_config.json"] = raw_dir / "generation_config.json"
        root = root_configs(dirs, stored_config(config, dtype), expected)
        files |= {path: json_bytes(value) for path, value in root.items()}
        return files

    return Float16Plan(
        model_name=MODEL_NAME,
        implementation="hf_llama",
        raw_dir=raw_dir,
        checkpoint=raw_dir,
        open=lambda progress: open_hf_shards(raw_dir, notify=progress),
        expected=expected,
        against=str(config_path),
        architecture=HFLlamaArchitecture(config),
        is_dropped=lambda name: name.endswith(DROPPED_SUFFIX),
        configs=configs,
        folders=(dirs.configs, dirs.tokenizer),
        source=source_info(ARCHITECTURE, provenance),
        tokenizer=tokenizer,
        safetensors={"key_names": "huggingface"},
        tokenizer_shared_with=SHARED_TOKENIZER_WITH,
        contradictions=lambda checkpoint: hf_llama_contradictions(
            config_path, checkpoint, tokenizer.vocab_size
        ),
    )


def shared_tokenizer(tokenizer_model: Path, reference_sha256: str | None) -> TokenizerInfo:
    """``tokenizer_model``'s identity, beside the reference tokenizer's SHA256 (a check proves
    they are equal); a missing file is an error naming its folder."""
    if not tokenizer_model.is_file():
        raise FileNotFoundError(
            f"{tokenizer_model.parent}: tokenizer files missing: ['tokenizer.model']"
        )
    return tokenizer_info(tokenizer_model).model_copy(
        update={"shared_with_sha256": reference_sha256}
    )


def stored_config(config: Mapping[str, Any], dtype: str) -> dict[str, Any]:
    """Upstream's ``config.json`` naming the dtype the weights are stored in."""
    stored = {**config, "torch_dtype": dtype}
    if "dtype" in config:
        stored["dtype"] = dtype
    return stored


def config_and_tokenizer_files(
    config: Mapping[str, Any],
    dtype: str,
    tokenizer_model: Path,
    config_folders: Sequence[Path],
    tokenizer_folders: Sequence[Path],
) -> dict[Path, bytes | Path]:
    """The stored ``config.json`` in each of ``config_folders`` and the tokenizer files made
    from ``tokenizer_model`` (``tokenizer_files``) in each of ``tokenizer_folders``."""
    data = json_bytes(stored_config(config, dtype))
    files: dict[Path, bytes | Path] = {folder / "config.json": data for folder in config_folders}
    for name, content in tokenizer_folder_files(tokenizer_model).items():
        files |= {folder / name: content for folder in tokenizer_folders}
    return files


def convert_hf_llama(
    raw_dir: Path,
    dirs: ModelDirs,
    provenance: Mapping[str, Any] | None,
    tokenizer_dir: Path | None,
    reference_tokenizer_sha256: str | None,
    code_version: str,
    progress: Progress | None = None,
    *,
    reuse_current: bool = False,
    lock_timeout_s: float = 60.0,
    device: str = "cpu",
) -> Float16Outcome:
    """Convert ``raw_dir`` into ``dirs`` (``convert_to_float16`` of :func:`hf_llama_plan`).

    ``provenance`` is ``raw_provenance(raw_dir)`` (None records the source as ``generated``).
    """
    plan = hf_llama_plan(raw_dir, dirs, provenance, tokenizer_dir, reference_tokenizer_sha256)
    return convert_to_float16(
        plan,
        dirs,
        code_version,
        progress,
        reuse_current=reuse_current,
        lock_timeout_s=lock_timeout_s,
        device=device,
    )
