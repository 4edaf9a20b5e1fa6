"""The reward model's own checks pass on a conversion and fail on each fault they exist for."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.convert_reward_llama import convert_reward_llama
from wmtp_assets.validate import forward_equivalence as fe
from wmtp_assets.validate import reward_model_checks as rc
from wmtp_assets_tests.models.checkpoint_fixtures import make_tokenizer
from wmtp_assets_tests.models.test_convert_reward_llama import _card_module_state, _raw


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> ModelDirs:
    root = tmp_path_factory.mktemp("starling")
    tokenizer = make_tokenizer(root / "tok" / "tokenizer.model")
    dirs = ModelDirs(root / "starling-rm-7b")
    _raw(dirs.root, tokenizer, torch.float32)
    convert_reward_llama(dirs.raw, dirs, None, None, "test")
    return dirs


@pytest.fixture
def copy(converted: ModelDirs, tmp_path: Path) -> ModelDirs:
    shutil.copytree(converted.root, tmp_path / "m")
    return ModelDirs(tmp_path / "m")


def test_a_conversion_passes_every_reward_check(converted: ModelDirs) -> None:
    assert rc.raw_keys_match_config(converted.raw).passed
    assert rc.keys_and_shapes_match_config(converted).passed
    assert rc.configs_agree(converted).passed
    outcome = rc.forward_pass(converted, "cpu")
    assert outcome.passed, outcome.summary
    assert outcome.details["reference"] == "source trace"
    # float32 source: the rewards differ by float16 rounding only, not by nothing
    assert 0 < abs(outcome.details["stored_reward"] - outcome.details["source_reward"]) < 1e-2


def test_the_streamed_forward_is_the_whole_reference_model(converted: ModelDirs) -> None:
    """The stored file streamed block by block = transformers' LlamaModel + v_head loaded
    whole from it (the card's module), position by position."""
    arch = rc.stored_architecture(converted)
    report = fe.compare_to_whole_model(arch, converted.safetensors, torch.device("cpu"))
    assert report.logits_shape == [1, 8, 1, 1] and not report.problems, report.problems


def _scaled(tensor: torch.Tensor) -> torch.Tensor:
    return tensor * 1.05


def _rows_reversed(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.flip(0)


@pytest.mark.parametrize("trace", ["recorded trace", "source read now"])
@pytest.mark.parametrize(
    ("tensor", "fault"),
    [
        ("v_head.weight", _scaled),
        ("transformer.layers.1.mlp.down_proj.weight", _rows_reversed),
    ],
)
def test_forward_fails_on_a_perturbed_weight(
    copy: ModelDirs, trace: str, tensor: str, fault: Callable[[torch.Tensor], torch.Tensor]
) -> None:
    if trace == "source read now":
        copy.source_trace.unlink()
    assert rc.forward_pass(copy, "cpu").passed  # the unperturbed copy passes either way
    stored = load_file(copy.weights)
    stored[tensor] = fault(stored[tensor])
    save_file(stored, copy.weights)
    outcome = rc.forward_pass(copy, "cpu")
    assert not outcome.passed, outcome.summary
    assert "differ beyond" in outcome.summary or "relative error" in outcome.summary


def test_keys_check_fails_on_an_extra_tensor(copy: ModelDirs) -> None:
    stored = load_file(copy.weights)
    stored["lm_head.weight"] = torch.zeros(3, 32, dtype=torch.float16)
    save_file(stored, copy.weights)
    outcome = rc.keys_and_shapes_match_config(copy)
    assert not outcome.passed and outcome.details["unexpected"] == ["lm_head.weight"]


def test_raw_check_names_the_keys_of_another_layout(copy: ModelDirs) -> None:
    state = torch.load(copy.raw / "pytorch_model.bin", weights_only=True)
    renamed = {n.replace("transformer.", "backbone."): t for n, t in state.items()}
    torch.save(renamed, copy.raw / "pytorch_model.bin")
    outcome = rc.raw_keys_match_config(copy.raw)
    assert not outcome.passed
    assert f"{len(state)} tensors with no decoder" in outcome.summary
    assert "backbone.embed_tokens.weight" in outcome.summary


def test_raw_check_fails_on_a_missing_value_head(copy: ModelDirs) -> None:
    state = torch.load(copy.raw / "pytorch_model.bin", weights_only=True)
    del state["v_head.weight"]
    torch.save(state, copy.raw / "pytorch_model.bin")
    outcome = rc.raw_keys_match_config(copy.raw)
    assert not outcome.passed and outcome.details["missing"] == ["v_head.weight"]


def test_raw_check_accepts_the_cards_complete_state_dict_only_when_shared(
    copy: ModelDirs,
) -> None:
    config = json.loads((copy.raw / "config.json").read_text())
    state = _card_module_state(config)
    torch.save(state, copy.raw / "pytorch_model.bin")
    assert rc.raw_keys_match_config(copy.raw).passed
    torch.save({n: t.clone() for n, t in state.items()}, copy.raw / "pytorch_model.bin")
    outcome = rc.raw_keys_match_config(copy.raw)
    assert not outcome.passed and "is not the tensor" in outcome.summary
