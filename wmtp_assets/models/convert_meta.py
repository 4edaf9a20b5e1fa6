"""What is Meta's in converting the multi-token-prediction checkpoint (``7B_1T_4``, REFERENCE §1).

``params.json`` becomes ``ModelArgs`` (vocabulary from the tokenizer where the file says -1)
and so the expected tensors; params.json must agree with the checkpoint (``rope.freqs`` included)
and the tokenizer (``upstream_consistency``); ``consolidated.pth`` is opened memory-mapped with
``weights_only=True``; ``rope.freqs`` is dropped (the model computes RoPE from the args); Meta
key names are kept. Published with the weights: ``configs/params.json`` (the source bytes)
and ``configs/meta_adapter.yaml``. The rest is :mod:`wmtp_assets.models.fp16_conversion`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.artifact import TokenizerInfo
from wmtp_assets.models.checkpoint_reader import open_checkpoint
from wmtp_assets.models.fp16_conversion import (
    Float16Outcome,
    Float16Plan,
    Progress,
    convert_to_float16,
    source_info,
)
from wmtp_assets.models.mtp.args import ModelArgs
from wmtp_assets.models.mtp.model import ROPE_FREQS_KEY
from wmtp_assets.models.shapes import meta_shapes
from wmtp_assets.models.streamed_architectures import MetaMTPArchitecture
from wmtp_assets.models.tokenizer_files import tokenizer_info
from wmtp_assets.models.upstream_consistency import meta_contradictions

MODEL_NAME = "meta-llama-mtp"
ARCHITECTURE = "meta_mtp.Transformer"
CHECKPOINT = "7B_1T_4/consolidated.pth"
PARAMS = "7B_1T_4/params.json"
TOKENIZER = "tokenizer.model"
FSDP_WRAP_POLICY = "wmtp_assets.models.mtp.model.fsdp_wrap_policy"


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


def meta_plan(
    raw_dir: Path,
    dirs: ModelDirs,
    provenance: Mapping[str, Any] | None,
    tokenizer: TokenizerInfo | None,
) -> Float16Plan:
    """The conversion of ``raw_dir`` (the Hub repo's layout) into ``dirs``, checked, unwritten."""
    if tokenizer is None:
        if not (raw_dir / TOKENIZER).is_file():
            raise FileNotFoundError(
                f"{raw_dir / TOKENIZER}: tokenizer.model not found (needed for its vocab size)"
            )
        tokenizer = tokenizer_info(raw_dir / TOKENIZER)
    params = raw_dir / PARAMS
    vocab = tokenizer.vocab_size
    args = ModelArgs.from_params_json(params, vocab_size=vocab)

    def configs(dtype: str) -> dict[Path, bytes | Path]:
        adapter = yaml.safe_dump(meta_adapter(args, dtype), sort_keys=True)
        return {
            dirs.configs / "params.json": params,
            dirs.configs / "meta_adapter.yaml": adapter.encode("utf-8"),
        }

    return Float16Plan(
        model_name=MODEL_NAME,
        implementation="pure_pytorch",
        raw_dir=raw_dir,
        checkpoint=raw_dir / CHECKPOINT,
        open=lambda progress: open_checkpoint(raw_dir / CHECKPOINT, notify=progress),
        expected=meta_shapes(args),
        against=str(params),
        architecture=MetaMTPArchitecture(args),
        is_dropped=lambda name: name == ROPE_FREQS_KEY,
        configs=configs,
        folders=(dirs.configs,),
        source=source_info(ARCHITECTURE, provenance),
        tokenizer=tokenizer,
        safetensors={"key_names": "meta", "freqs_cis_handling": "runtime_computed"},
        distributed={"fsdp_compatible": True, "wrap_policy": FSDP_WRAP_POLICY},
        contradictions=lambda checkpoint: meta_contradictions(params, checkpoint, vocab),
    )


def convert_meta_mtp(
    raw_dir: Path,
    dirs: ModelDirs,
    provenance: Mapping[str, Any] | None,
    tokenizer: TokenizerInfo | None,
    code_version: str,
    progress: Progress | None = None,
    *,
    reuse_current: bool = False,
    lock_timeout_s: float = 60.0,
    device: str = "cpu",
) -> Float16Outcome:
    """Convert ``raw_dir`` into ``dirs`` (``convert_to_float16`` of :func:`meta_plan`).

    ``provenance`` is ``raw_provenance(raw_dir)`` (None records the source as ``generated``);
    ``tokenizer`` describes the model's tokenizer (None: read ``raw_dir/tokenizer.model``).
    """
    plan = meta_plan(raw_dir, dirs, provenance, tokenizer)
    return convert_to_float16(
        plan,
        dirs,
        code_version,
        progress,
        reuse_current=reuse_current,
        lock_timeout_s=lock_timeout_s,
        device=device,
    )
