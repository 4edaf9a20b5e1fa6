"""Starling-style conversion: one reward-model ``.bin``, any float dtype, to float16, names kept."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file

from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.convert_reward_llama import convert_reward_llama
from wmtp_assets.models.fp16_cast import Float16RangeError
from wmtp_assets.models.reward_llama import RewardLayoutError
from wmtp_assets.models.shapes import ShapeMismatchError
from wmtp_assets.models.tokenizer_files import load_sentencepiece
from wmtp_assets_tests.models.checkpoint_fixtures import make_tokenizer

TOKENS = torch.tensor([[1, 5, 77, 300, 12, 9, 400, 2]])


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.model")


def _config(vocab: int) -> dict[str, object]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": vocab,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-5,
        "torch_dtype": "bfloat16",
    }


def _card_state(config: dict[str, object], prefix: str) -> dict[str, torch.Tensor]:
    """A reward model's state dict as the card's module holds it: LlamaModel + v_head."""
    torch.manual_seed(5)
    decoder = transformers.LlamaModel(transformers.LlamaConfig(**config))
    state = {prefix + k: v.detach().clone() for k, v in decoder.state_dict().items()}
    state["v_head.weight"] = torch.randn(1, int(str(config["hidden_size"]))) * 0.1
    return state


def _raw(
    root: Path,
    tokenizer: Path,
    dtype: torch.dtype,
    prefix: str = "transformer.",
    extra: dict[str, torch.Tensor] | None = None,
) -> tuple[Path, dict[str, torch.Tensor]]:
    raw = root / "raw"
    raw.mkdir(parents=True)
    config = _config(load_sentencepiece(tokenizer).vocab_size())
    state = {n: t.to(dtype) for n, t in _card_state(config, prefix).items()}
    torch.save({**state, **(extra or {})}, raw / "pytorch_model.bin")
    (raw / "config.json").write_text(json.dumps(config))
    shutil.copy(tokenizer, raw / "tokenizer.model")
    return raw, state


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_every_float_source_dtype_becomes_float16_with_names_kept(
    tmp_path: Path, tokenizer: Path, dtype: torch.dtype
) -> None:
    inv_freq = {"transformer.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(4)}
    raw, state = _raw(tmp_path, tokenizer, dtype, extra=inv_freq)
    dirs = ModelDirs(tmp_path / "out")
    outcome = convert_reward_llama(raw, dirs, None, None, "test")
    stored = load_file(dirs.weights)
    assert sorted(stored) == sorted(state)  # upstream names; the buffer dropped
    for name, tensor in state.items():
        assert stored[name].dtype == torch.float16
        assert torch.equal(stored[name], tensor.to(torch.float16)), name
    assert outcome.report is not None and outcome.report.dropped_keys == list(inv_freq)
    assert outcome.report.source_dtypes == {str(dtype).removeprefix("torch."): len(state)}
    assert outcome.metadata.safetensors["decoder_prefix"] == "transformer."
    files = sorted(p.relative_to(dirs.root).as_posix() for p in dirs.root.rglob("*") if p.is_file())
    assert "configs/config.json" in files and "tokenizer/tokenizer.json" in files
    assert "tokenizer/tokenizer.model" in files and "safetensors/SHA256SUMS" in files
    assert json.loads((dirs.configs / "config.json").read_text())["torch_dtype"] == "float16"


@pytest.mark.parametrize("prefix", ["model.", ""])
def test_the_other_layouts_convert_with_their_own_names(
    tmp_path: Path, tokenizer: Path, prefix: str
) -> None:
    raw, state = _raw(tmp_path, tokenizer, torch.float32, prefix=prefix)
    dirs = ModelDirs(tmp_path / "out")
    convert_reward_llama(raw, dirs, None, None, "test")
    assert sorted(load_file(dirs.weights)) == sorted(state)


def test_an_unknown_layout_is_refused_naming_the_keys_found(
    tmp_path: Path, tokenizer: Path
) -> None:
    raw, state = _raw(tmp_path, tokenizer, torch.float32, prefix="backbone.")
    dirs = ModelDirs(tmp_path / "out")
    with pytest.raises(RewardLayoutError) as err:
        convert_reward_llama(raw, dirs, None, None, "test")
    assert f"{len(state)} tensors with no decoder" in str(err.value)
    assert "backbone.embed_tokens.weight" in str(err.value)
    assert not dirs.root.exists()


@pytest.mark.parametrize(
    ("extra", "error", "named"),
    [
        ({"lm_head.weight": torch.zeros(3, 32)}, ShapeMismatchError, "lm_head.weight"),
        ({"transformer.step": torch.tensor([7])}, ShapeMismatchError, "transformer.step"),
    ],
)
def test_unexpected_entries_are_refused_by_name_before_writing(
    tmp_path: Path,
    tokenizer: Path,
    extra: dict[str, torch.Tensor],
    error: type[Exception],
    named: str,
) -> None:
    raw, _ = _raw(tmp_path, tokenizer, torch.float32, extra=extra)
    dirs = ModelDirs(tmp_path / "out")
    with pytest.raises(error, match=re.escape(named)):
        convert_reward_llama(raw, dirs, None, None, "test")
    assert not dirs.weights.exists()


def test_a_non_float_weight_is_refused_by_name(tmp_path: Path, tokenizer: Path) -> None:
    raw = tmp_path / "raw"
    _raw(tmp_path, tokenizer, torch.float32)
    state = torch.load(raw / "pytorch_model.bin", weights_only=True)
    state["v_head.weight"] = torch.ones(1, 32, dtype=torch.int32)
    torch.save(state, raw / "pytorch_model.bin")
    with pytest.raises(TypeError, match=r"v_head\.weight"):
        convert_reward_llama(raw, ModelDirs(tmp_path / "out"), None, None, "test")
    assert not (tmp_path / "out" / "safetensors" / "model.safetensors").exists()


def test_a_value_float16_cannot_hold_is_refused(tmp_path: Path, tokenizer: Path) -> None:
    raw = tmp_path / "raw"
    _raw(tmp_path, tokenizer, torch.float32)
    state = torch.load(raw / "pytorch_model.bin", weights_only=True)
    state["v_head.weight"][0, 3] = 1e6
    torch.save(state, raw / "pytorch_model.bin")
    with pytest.raises(Float16RangeError, match=r"v_head\.weight"):
        convert_reward_llama(raw, ModelDirs(tmp_path / "out"), None, None, "test")


def _card_module_state(config: dict[str, object]) -> dict[str, torch.Tensor]:
    """The model card's whole module: the chat model as ``model``, its decoder as
    ``transformer`` (the same module), and ``v_head``; its complete state dict."""
    torch.manual_seed(6)
    module = torch.nn.Module()
    module.model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**config))
    module.transformer = module.model.model
    module.v_head = torch.nn.Linear(int(str(config["hidden_size"])), 1, bias=False)
    return module.state_dict()


def test_the_cards_complete_state_dict_converts_without_its_chat_model(
    tmp_path: Path, tokenizer: Path
) -> None:
    raw, _ = _raw(tmp_path, tokenizer, torch.float32)
    config = json.loads((raw / "config.json").read_text())
    state = _card_module_state(config)
    torch.save(state, raw / "pytorch_model.bin")  # shared tensors stored once
    dirs = ModelDirs(tmp_path / "out")
    outcome = convert_reward_llama(raw, dirs, None, None, "test")
    stored = load_file(dirs.weights)
    kept = sorted(n for n in state if n.startswith("transformer.") or n == "v_head.weight")
    assert sorted(stored) == kept
    for name in kept:
        assert torch.equal(stored[name], state[name].to(torch.float16)), name
    assert outcome.report is not None
    assert sorted(outcome.report.dropped_keys) == sorted(set(state) - set(kept))
    assert "model.lm_head.weight" in outcome.report.dropped_keys


def test_a_chat_model_copy_that_differs_is_refused(tmp_path: Path, tokenizer: Path) -> None:
    raw, _ = _raw(tmp_path, tokenizer, torch.float32)
    config = json.loads((raw / "config.json").read_text())
    state = {n: t.clone() for n, t in _card_module_state(config).items()}  # no longer shared
    torch.save(state, raw / "pytorch_model.bin")
    with pytest.raises(RewardLayoutError, match=r"model\.model\.\S+ is not the tensor"):
        convert_reward_llama(raw, ModelDirs(tmp_path / "out"), None, None, "test")
