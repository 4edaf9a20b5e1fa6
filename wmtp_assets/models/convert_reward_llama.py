"""What is Starling-RM-7B-alpha's in converting it (REFERENCE §11): one ``pytorch_model.bin``,
a Llama ``config.json`` and ``tokenizer.model``.

The checkpoint's key layout is read from the file's own index (its pickle, memory-mapped: no
tensor bytes) and must be one ``models.reward_llama`` accepts; the expected tensors are that
layout's decoder plus ``v_head.weight`` ``[1, hidden]`` (``shapes.llama_reward_shapes``);
names are kept; ``*.rotary_emb.inv_freq`` buffers are dropped as for Sheared-LLaMA, and so are
the card module's copies of the chat model (``model.model.*``, proven to be the
``transformer.*`` tensors, and ``model.lm_head.weight``); anything else, or a tensor that is
not float, is refused by name before anything is written. The stored folder is the trainer's
(``setup_models.py``): ``safetensors/`` holds the weights and seal only (a reward model is no
``from_pretrained`` causal LM), the config goes to ``configs/``, the tokenizer files (with a
proven ``tokenizer.json``) to ``tokenizer/``. The rest is
:mod:`wmtp_assets.models.fp16_conversion`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.checkpoint_reader import open_checkpoint
from wmtp_assets.models.convert_hf_llama import (
    DROPPED_SUFFIX,
    config_and_tokenizer_files,
    shared_tokenizer,
)
from wmtp_assets.models.fp16_conversion import (
    Float16Outcome,
    Float16Plan,
    Progress,
    convert_to_float16,
    source_info,
)
from wmtp_assets.models.reward_llama import (
    LlamaRewardArchitecture,
    checkpoint_layout,
    read_reward_config,
)
from wmtp_assets.models.shapes import REWARD_HEAD, llama_reward_shapes

MODEL_NAME = "starling-rm-7b"
ARCHITECTURE = "LlamaRewardModel (LlamaModel + v_head)"
CHECKPOINT = "pytorch_model.bin"
SHARED_TOKENIZER_WITH = "meta-llama-mtp"


def read_layout(checkpoint: Path, progress: Progress | None = None) -> tuple[str, list[str]]:
    """The decoder prefix of ``checkpoint``'s keys and the card-model entries to drop
    (``reward_llama.checkpoint_layout``), from its pickle without reading tensor bytes."""
    with open_checkpoint(checkpoint, notify=progress) as opened:
        return checkpoint_layout(opened, str(checkpoint))


def reward_llama_plan(
    raw_dir: Path,
    dirs: ModelDirs,
    provenance: Mapping[str, Any] | None,
    reference_tokenizer_sha256: str | None,
    progress: Progress | None = None,
) -> Float16Plan:
    """The conversion of ``raw_dir`` into ``dirs``, checked, unwritten (see the module
    docstring); ``reference_tokenizer_sha256`` is recorded beside this model's tokenizer SHA256
    so a check can prove they are shared."""
    config_path = raw_dir / "config.json"
    config = read_reward_config(config_path)
    checkpoint = raw_dir / CHECKPOINT
    prefix, card_entries = read_layout(checkpoint, progress)
    dropped = set(card_entries)
    tokenizer_model = raw_dir / "tokenizer.model"
    tokenizer = shared_tokenizer(tokenizer_model, reference_tokenizer_sha256)

    def configs(dtype: str) -> dict[Path, bytes | Path]:
        return config_and_tokenizer_files(
            config, dtype, tokenizer_model, (dirs.configs,), (dirs.tokenizer,)
        )

    return Float16Plan(
        model_name=MODEL_NAME,
        implementation="hf_llama",
        raw_dir=raw_dir,
        checkpoint=checkpoint,
        open=lambda notify: open_checkpoint(checkpoint, notify=notify),
        expected=llama_reward_shapes(config, prefix, source=str(config_path)),
        against=f"{config_path} (a Llama reward model, decoder keys under {prefix!r})",
        architecture=LlamaRewardArchitecture(config, prefix),
        is_dropped=lambda name: name.endswith(DROPPED_SUFFIX) or name in dropped,
        configs=configs,
        folders=(dirs.configs, dirs.tokenizer),
        source=source_info(ARCHITECTURE, provenance),
        tokenizer=tokenizer,
        safetensors={"key_names": "upstream", "decoder_prefix": prefix, "value_head": REWARD_HEAD},
        tokenizer_shared_with=SHARED_TOKENIZER_WITH,
    )


def convert_reward_llama(
    raw_dir: Path,
    dirs: ModelDirs,
    provenance: Mapping[str, Any] | None,
    reference_tokenizer_sha256: str | None,
    code_version: str,
    progress: Progress | None = None,
    *,
    reuse_current: bool = False,
    lock_timeout_s: float = 60.0,
    device: str = "cpu",
) -> Float16Outcome:
    """Convert ``raw_dir`` into ``dirs`` (``convert_to_float16`` of :func:`reward_llama_plan`).

    ``provenance`` is ``raw_provenance(raw_dir)`` (None records the source as ``generated``).
    """
    plan = reward_llama_plan(raw_dir, dirs, provenance, reference_tokenizer_sha256, progress)
    return convert_to_float16(
        plan,
        dirs,
        code_version,
        progress,
        reuse_current=reuse_current,
        lock_timeout_s=lock_timeout_s,
        device=device,
    )
