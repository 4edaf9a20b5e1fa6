"""The streamed source-vs-converted forward on the demo's Meta and Sheared-format checkpoints.

References are independent of the streaming code: the whole ``Transformer`` and transformers'
``LlamaForCausalLM`` run on the same weights. Corruptions are conversion bugs that keep every
name, shape and dtype (so only a forward check can see them).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from wmtp_assets.demo.model_mirror import build_meta_repo, build_sheared_repo
from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models import streamed_forward as sf
from wmtp_assets.models.checkpoint_reader import (
    load_torch_checkpoint,
    open_checkpoint,
    open_hf_shards,
)
from wmtp_assets.models.convert_hf_llama import convert_hf_llama
from wmtp_assets.models.convert_meta import CHECKPOINT, PARAMS, convert_meta_mtp
from wmtp_assets.models.hf_llama import read_llama_config
from wmtp_assets.models.mtp.args import ModelArgs
from wmtp_assets.models.mtp.model import Transformer
from wmtp_assets.models.streamed_architectures import HFLlamaArchitecture, MetaMTPArchitecture
from wmtp_assets.models.tokenizer_files import load_sentencepiece
from wmtp_assets.validate import forward_equivalence as fe
from wmtp_assets_tests.models.checkpoint_fixtures import make_tokenizer

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
Edit = Callable[[dict[str, torch.Tensor]], None]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.model")


@pytest.fixture(scope="module")
def meta(tmp_path_factory: pytest.TempPathFactory, tokenizer: Path) -> ModelDirs:
    """The demo's float32 Meta checkpoint in ``raw/``, converted."""
    root = tmp_path_factory.mktemp("meta")
    repo = build_meta_repo(root / "mirror", tokenizer)
    dirs = ModelDirs(root / "model")
    shutil.copytree(repo, dirs.raw)
    convert_meta_mtp(dirs.raw, dirs, None, None, "test")
    return dirs


@pytest.fixture(scope="module")
def sheared(tmp_path_factory: pytest.TempPathFactory, tokenizer: Path) -> ModelDirs:
    """The demo's float32 two-shard Sheared-format checkpoint in ``raw/``, converted."""
    root = tmp_path_factory.mktemp("sheared")
    repo = build_sheared_repo(root / "mirror", tokenizer, sha256_file(tokenizer))
    dirs = ModelDirs(root / "model")
    shutil.copytree(repo, dirs.raw)
    convert_hf_llama(dirs.raw, dirs, None, None, None, "test")
    return dirs


def _meta_arch(dirs: ModelDirs) -> MetaMTPArchitecture:
    vocab = load_sentencepiece(dirs.raw / "tokenizer.model").vocab_size()
    return MetaMTPArchitecture(ModelArgs.from_params_json(dirs.raw / PARAMS, vocab))


def _hf_arch(dirs: ModelDirs) -> HFLlamaArchitecture:
    return HFLlamaArchitecture(read_llama_config(dirs.raw / "config.json"))


def _compare(
    arch: fe.StreamedArchitecture, source: sf.Opener, weights: Path, device: str = "cpu"
) -> fe.EquivalenceReport:
    converted = lambda: open_checkpoint(weights)  # noqa: E731
    return fe.compare_to_source(arch, source, converted, torch.device(device))


def _corrupted(dirs: ModelDirs, tmp_path: Path, edit: Edit) -> Path:
    """A copy of the converted weights with ``edit`` applied (still valid float16 safetensors)."""
    tensors = load_file(dirs.weights)
    edit(tensors)
    path = tmp_path / "model.safetensors"
    save_file(tensors, path, metadata={"format": "pt"})
    return path


def _swap(a: str, b: str) -> Edit:
    def edit(tensors: dict[str, torch.Tensor]) -> None:
        tensors[a], tensors[b] = tensors[b], tensors[a]

    return edit


@pytest.mark.parametrize("device", DEVICES)
def test_meta_streamed_logits_are_the_whole_transformers(meta: ModelDirs, device: str) -> None:
    """Streaming block by block computes the model's forward, for the source and the fp16 file."""
    arch = _meta_arch(meta)
    source = meta.raw / CHECKPOINT
    tokens = sf.prompt_tokens(arch.vocab_size)
    trace = sf.trace_checkpoint(arch, lambda: open_checkpoint(source), torch.device(device))
    run = fe.streamed_logits(
        arch, lambda: open_checkpoint(meta.weights), torch.device(device), trace
    )
    src, conv = trace.states[sf.LOGITS], run.logits
    model = Transformer(arch.args).to(device)
    model.load_meta_state_dict(load_torch_checkpoint(source), source=str(source))
    with torch.no_grad():
        expected = model(tokens.to(device))
        assert fe.relative_error(src, expected) < 1e-5
        model.load_meta_state_dict({k: v.float() for k, v in load_file(meta.weights).items()})
        assert fe.relative_error(conv, model(tokens.to(device))) < 1e-5
    assert conv.shape == (1, sf.PROMPT_LENGTH, arch.args.n_future_tokens, arch.vocab_size)


@pytest.mark.parametrize("device", DEVICES)
def test_hf_streamed_logits_are_transformers_llama(sheared: ModelDirs, device: str) -> None:
    arch = _hf_arch(sheared)
    tokens = sf.prompt_tokens(arch.vocab_size)
    trace = sf.trace_checkpoint(arch, lambda: open_hf_shards(sheared.raw), torch.device(device))
    src = trace.states[sf.LOGITS]
    model = transformers.LlamaForCausalLM.from_pretrained(sheared.raw, dtype=torch.float32)
    with torch.no_grad():
        expected = model.to(device)(tokens.to(device)).logits
    assert fe.relative_error(src[:, :, 0], expected) < 1e-5


def test_meta_conversion_keeps_the_function(meta: ModelDirs) -> None:
    arch = _meta_arch(meta)
    report = _compare(arch, lambda: open_checkpoint(meta.raw / CHECKPOINT), meta.weights)
    assert report.problems == []
    expected_stages = {sf.EMBEDDING, *arch.trunk, *arch.heads, sf.LOGITS}
    assert set(report.stage_errors) == expected_stages
    # fp32 -> fp16 rounds every weight: errors are small but not zero
    assert all(0 < e < fe.STAGE_TOLERANCE / 4 for e in report.stage_errors.values())
    assert report.top1_agreement == 1.0
    assert report.finite


def test_a_bfloat16_source_converts_exactly(tokenizer: Path, tmp_path: Path) -> None:
    """bf16 values fit fp16's mantissa: the tolerance's zero-error case of the derivation."""
    repo = build_meta_repo(tmp_path / "mirror", tokenizer)
    dirs = ModelDirs(tmp_path / "model")
    shutil.copytree(repo, dirs.raw)
    checkpoint = dirs.raw / CHECKPOINT
    torch.save({k: v.bfloat16() for k, v in load_torch_checkpoint(checkpoint).items()}, checkpoint)
    convert_meta_mtp(dirs.raw, dirs, None, None, "test")
    report = _compare(_meta_arch(dirs), lambda: open_checkpoint(checkpoint), dirs.weights)
    assert report.problems == []
    assert max(report.stage_errors.values()) < 1e-6


@pytest.mark.parametrize(
    ("edit", "stage"),
    [
        (_swap("layers.0.feed_forward.w1.weight", "layers.0.feed_forward.w3.weight"), "layers.0"),
        (
            _swap("extra_heads.1.attention.wq.weight", "extra_heads.1.attention.wv.weight"),
            "extra_heads.1",
        ),
    ],
)
def test_meta_corrupted_tensor_fails_at_its_stage(
    meta: ModelDirs, tmp_path: Path, edit: Edit, stage: str
) -> None:
    weights = _corrupted(meta, tmp_path, edit)
    report = _compare(_meta_arch(meta), lambda: open_checkpoint(meta.raw / CHECKPOINT), weights)
    assert report.problems
    worst = report.worst_stage
    assert worst is not None
    assert worst[0] == stage
    assert worst[1] > fe.STAGE_TOLERANCE
    others = {n: e for n, e in report.stage_errors.items() if n != worst[0]}
    assert all(e <= fe.STAGE_TOLERANCE for e in others.values())


def test_hf_conversion_keeps_the_function(sheared: ModelDirs) -> None:
    arch = _hf_arch(sheared)
    report = _compare(arch, lambda: open_hf_shards(sheared.raw), sheared.weights)
    assert report.problems == []
    assert set(report.stage_errors) == {sf.EMBEDDING, *arch.trunk, sf.LOGITS}
    assert all(0 < e < fe.STAGE_TOLERANCE / 4 for e in report.stage_errors.values())


def test_hf_swapped_gate_and_up_fail(sheared: ModelDirs, tmp_path: Path) -> None:
    prefix = "model.layers.1.mlp"
    weights = _corrupted(
        sheared, tmp_path, _swap(f"{prefix}.gate_proj.weight", f"{prefix}.up_proj.weight")
    )
    report = _compare(_hf_arch(sheared), lambda: open_hf_shards(sheared.raw), weights)
    assert report.worst_stage is not None
    assert report.worst_stage[0] == "model.layers.1"
    assert "model.layers.1" in report.problems[0]


def test_non_finite_logits_fail(sheared: ModelDirs, tmp_path: Path) -> None:
    def poison(tensors: dict[str, torch.Tensor]) -> None:
        tensors["lm_head.weight"][3, 0] = float("inf")

    weights = _corrupted(sheared, tmp_path, poison)
    report = _compare(_hf_arch(sheared), lambda: open_hf_shards(sheared.raw), weights)
    assert not report.finite
    assert "NaN or Inf" in report.problems[0]


def test_prompt_is_fixed_and_in_range() -> None:
    first, again = sf.prompt_tokens(50), sf.prompt_tokens(50)
    assert torch.equal(first, again)
    assert first.shape == (1, sf.PROMPT_LENGTH)
    assert int(first.min()) >= 0 and int(first.max()) < 50
    assert len(set(first[0].tolist())) > 1
