"""A Llama reward model's checkpoint (Starling-RM-7B-alpha, REFERENCE §11): its key layout, its
forward, and the reward it gives.

The model card builds the reward model from Llama-2-7B-chat: ``transformer`` is the decoder
(``LlamaModel``, no LM head) and ``v_head`` a bias-free ``Linear(hidden, 1)``; the reward of a
sequence is ``v_head`` of the last hidden state at the position before the first pad token
(pad = unk = id 0). Users load the ``.bin`` onto that module with ``strict=False``, so the
file's key names are not documented. The layouts accepted are the ones that loading code fills:
the decoder's keys under one of :data:`DECODER_PREFIXES` (``transformer.`` as the module's own
state dict names them; ``model.model.`` through its ``model`` attribute; ``model.`` or none as
``LlamaForCausalLM`` / ``LlamaModel`` save them) plus ``v_head.weight``. The card's module
also holds the whole chat model it was built from as ``model``, so its complete state dict
repeats the decoder under ``model.model.`` beside ``transformer.`` (``torch.save`` stores the
shared tensors once) and adds ``model.lm_head.weight``, which the reward never reads: those
entries (:func:`card_model_entries`) are dropped once proven to be the very ``transformer.``
tensors. Names are kept as the file has them, like the trainer's own conversion (``save_file``
of the loaded state dict); the prefix found is recorded in ``metadata.json``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wmtp_assets.models.checkpoint_reader import LazyCheckpoint, open_checkpoint
from wmtp_assets.models.hf_llama import read_llama_config
from wmtp_assets.models.shapes import REWARD_HEAD
from wmtp_assets.models.streamed_architectures import HFLlamaArchitecture, quiet_transformers

DECODER_PREFIXES = ("transformer.", "model.model.", "model.", "")
"""Where the decoder's keys may sit, most specific first (see the module docstring)."""
CARD_DUPLICATE_PREFIXES = ("transformer.", "model.model.")
PAD_ID = 0
CONFIG_ARCHITECTURES = ("LlamaForCausalLM", "LlamaModel")
"""What upstream's ``config.json`` may name: the chat model's config, or its decoder's."""
_SHOWN = 8


class RewardLayoutError(ValueError):
    """A checkpoint whose keys are not a Llama reward model's in any accepted layout."""


def read_reward_config(path: Path) -> dict[str, Any]:
    """The Llama ``config.json`` of a reward model; errors name the file."""
    return read_llama_config(path, CONFIG_ARCHITECTURES)


def decoder_prefix(names: Collection[str], source: str) -> str:
    """The one prefix of :data:`DECODER_PREFIXES` the decoder's keys of ``names`` use.

    Raises :class:`RewardLayoutError` naming how many keys ``source`` holds and a few of them
    when none, or more than one (the same decoder saved twice), is found.
    """
    found = [p for p in DECODER_PREFIXES if f"{p}embed_tokens.weight" in names]
    if len(found) == 1:
        return found[0]
    shown = ", ".join(sorted(names)[:_SHOWN]) or "none"
    accepted = ", ".join(f"'{p}embed_tokens.weight'" for p in DECODER_PREFIXES)
    what = "no decoder" if not found else f"the decoder under {len(found)} prefixes {found}"
    raise RewardLayoutError(
        f"{source}: {len(names)} tensors with {what}; a Llama reward model has one of "
        f"{accepted} and its layers beside {REWARD_HEAD!r}. Found: {shown}"
        + (" …" if len(names) > _SHOWN else "")
    )


def card_model_entries(names: Collection[str]) -> list[str]:
    """The entries of the card module's ``model`` attribute (see the module docstring) when
    ``names`` is that module's complete state dict: empty unless the decoder is both under
    ``transformer.`` and under ``model.model.``."""
    if not {f"{p}embed_tokens.weight" for p in CARD_DUPLICATE_PREFIXES} <= set(names):
        return []
    return sorted(n for n in names if n.startswith(("model.model.", "model.lm_head.")))


def checkpoint_layout(checkpoint: LazyCheckpoint, source: str) -> tuple[str, list[str]]:
    """The decoder prefix of ``checkpoint`` and the card-model entries it may drop, each proven
    to be the ``transformer.`` tensor of the same name (same storage bytes, shape and strides:
    read from the pickle, no tensor bytes); else :class:`RewardLayoutError` naming it."""
    names = set(checkpoint.names)
    entries = card_model_entries(names)
    for name in entries:
        if not name.startswith("model.model."):
            continue
        kept = "transformer." + name.removeprefix("model.model.")
        if kept not in names or not _same_tensor(checkpoint.get(name), checkpoint.get(kept)):
            raise RewardLayoutError(
                f"{source}: {name} is not the tensor {kept} (the card's module shares them); "
                "refusing to drop either"
            )
    return decoder_prefix(names - set(entries), source), entries


def _same_tensor(a: Tensor, b: Tensor) -> bool:
    return (
        a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
        and a.storage_offset() == b.storage_offset()
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.dtype == b.dtype
    )


def reward_positions(tokens: Tensor, pad_id: int = PAD_ID) -> Tensor:
    """Per row of ``tokens`` ``[B, T]``, the position the card reads the reward at: the one
    before the first ``pad_id``, or the last when there is none."""
    is_pad = tokens == pad_id
    first_pad = torch.where(is_pad.any(-1), is_pad.int().argmax(-1), tokens.shape[-1])
    return (first_pad - 1) % tokens.shape[-1]


def rewards_at(values: Tensor, tokens: Tensor, pad_id: int = PAD_ID) -> Tensor:
    """Rewards ``[B]`` from per-position values ``[B, T]`` (see :func:`reward_positions`)."""
    positions = reward_positions(tokens, pad_id).to(values.device)
    return values.gather(-1, positions[:, None])[:, 0]


class LlamaRewardArchitecture(HFLlamaArchitecture):
    """The decoder through transformers' own layers (``HFLlamaArchitecture``) under the file's
    prefix, and ``v_head`` as the output projection: the streamed "logits" are the per-position
    values ``[B, T, 1, 1]``, whose entry at :func:`reward_positions` is the reward."""

    def __init__(self, config: Mapping[str, Any], prefix: str) -> None:
        super().__init__({**config, "tie_word_embeddings": False})
        self.prefix = prefix
        self.embedding, self.norm = f"{prefix}embed_tokens.weight", f"{prefix}norm"
        self.trunk = [f"{prefix}layers.{i}" for i in range(self.config.num_hidden_layers)]
        self.output = REWARD_HEAD

    def reference_model(self) -> RewardModel:
        """The card's module, built from transformers' ``LlamaModel`` (float32, no weights)."""
        return RewardModel(self.transformers.LlamaModel(self.config), self.config.hidden_size)

    def whole_model_logits(self, folder: Path, tokens: Tensor, device: torch.device) -> Tensor:
        with open_checkpoint(folder / "model.safetensors") as stored:
            state = {n: stored.get(n) for n in stored.names}
        model = self.loaded(state, device)
        values: Tensor = model.values(tokens.to(device))
        return values[:, :, None, None]

    def loaded(self, state: Mapping[str, Tensor], device: torch.device) -> RewardModel:
        """:meth:`reference_model` holding ``state`` (file key names), strictly, in float32."""
        with quiet_transformers(self.transformers):
            model = self.reference_model()
        renamed = {
            ("transformer." + n.removeprefix(self.prefix) if n != REWARD_HEAD else n): t.float()
            for n, t in state.items()
        }
        model.load_state_dict(renamed, strict=True)
        return model.to(device).eval()


class RewardModel(nn.Module):
    """The model card's reward model: ``transformer`` (a ``LlamaModel``) and a bias-free
    ``v_head``; an independent reference for the streamed forward (tests, whole-model check)."""

    def __init__(self, transformer: nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.transformer = transformer
        self.v_head = nn.Linear(hidden_size, 1, bias=False)

    def values(self, tokens: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """``v_head`` of every position's last hidden state, ``[B, T]``."""
        hidden = self.transformer(input_ids=tokens, attention_mask=attention_mask)
        out: Tensor = self.v_head(hidden.last_hidden_state)[..., 0]
        return out

    def forward(self, tokens: Tensor, pad_id: int = PAD_ID) -> Tensor:
        """Rewards ``[B]`` of right-padded ``tokens``, as the card computes them."""
        positions = reward_positions(tokens, pad_id)
        mask = (torch.arange(tokens.shape[-1], device=tokens.device) <= positions[:, None]).long()
        return rewards_at(self.values(tokens, mask), tokens, pad_id)
