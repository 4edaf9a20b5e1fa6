"""The reward model's key layouts, reward position and streamed forward, against transformers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers
from torch import nn

from wmtp_assets.models.checkpoint_reader import open_checkpoint
from wmtp_assets.models.reward_llama import (
    LlamaRewardArchitecture,
    RewardLayoutError,
    decoder_prefix,
    reward_positions,
)
from wmtp_assets.models.streamed_forward import LOGITS, trace_checkpoint

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 50,
    "max_position_embeddings": 64,
    "rms_norm_eps": 1e-5,
}


def _card_module() -> tuple[nn.Module, nn.Linear]:
    """The model card's pieces, built here from transformers: LlamaModel and a bias-free v_head."""
    torch.manual_seed(3)
    decoder = transformers.LlamaModel(transformers.LlamaConfig(**CONFIG)).eval()
    v_head = nn.Linear(CONFIG["hidden_size"], 1, bias=False)
    return decoder, v_head


def _card_reward(decoder: nn.Module, v_head: nn.Linear, ids: list[int]) -> float:
    """The reward of one unpadded sequence: v_head of the last token's last hidden state."""
    with torch.no_grad():
        hidden = decoder(input_ids=torch.tensor([ids])).last_hidden_state
        return float(v_head(hidden)[0, -1, 0])


@pytest.mark.parametrize("prefix", ["transformer.", "model.model.", "model.", ""])
def test_each_layout_of_the_cards_loading_code_is_found(prefix: str) -> None:
    names = [
        f"{prefix}embed_tokens.weight",
        f"{prefix}layers.0.mlp.up_proj.weight",
        "v_head.weight",
    ]
    assert decoder_prefix(names, "x.bin") == prefix


def test_an_unknown_layout_names_the_keys_found_and_their_count() -> None:
    names = [f"backbone.h.{i}.weight" for i in range(12)] + ["score.weight"]
    with pytest.raises(RewardLayoutError) as err:
        decoder_prefix(names, "raw/pytorch_model.bin")
    message = str(err.value)
    assert message.startswith("raw/pytorch_model.bin: 13 tensors with no decoder")
    assert "backbone.h.0.weight" in message and "transformer.embed_tokens.weight" in message


def test_the_decoder_saved_twice_is_refused() -> None:
    names = ["transformer.embed_tokens.weight", "model.model.embed_tokens.weight", "v_head.weight"]
    with pytest.raises(RewardLayoutError, match="under 2 prefixes"):
        decoder_prefix(names, "x.bin")


def test_reward_position_is_before_the_first_pad_as_on_the_card() -> None:
    tokens = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9], [5, 0, 7, 8, 0]])
    assert reward_positions(tokens).tolist() == [2, 4, 0]


def test_streamed_values_equal_the_cards_reward_model(tmp_path: Path) -> None:
    """The streamed forward (the conversion's trace) gives the rewards that LlamaModel + v_head
    give each unpadded sequence, and the reference module its rewards on a padded batch."""
    decoder, v_head = _card_module()
    state = {f"transformer.{k}": v for k, v in decoder.state_dict().items()}
    state["v_head.weight"] = v_head.weight.detach()
    torch.save(state, tmp_path / "pytorch_model.bin")
    arch = LlamaRewardArchitecture(CONFIG, "transformer.")
    ids = [3, 17, 9, 44, 21, 8]
    trace = trace_checkpoint(
        arch,
        lambda: open_checkpoint(tmp_path / "pytorch_model.bin"),
        torch.device("cpu"),
        torch.tensor([ids]),
    )
    values = trace.states[LOGITS][0, :, 0, 0]
    for end in (1, 3, len(ids)):
        assert float(values[end - 1]) == pytest.approx(
            _card_reward(decoder, v_head, ids[:end]), abs=1e-5
        )
    model = arch.loaded(state, torch.device("cpu"))
    padded = torch.tensor([ids, [*ids[:3], 0, 0, 0]])
    with torch.no_grad():
        rewards = model(padded)
    assert rewards.tolist() == pytest.approx(
        [_card_reward(decoder, v_head, ids), _card_reward(decoder, v_head, ids[:3])], abs=1e-5
    )
