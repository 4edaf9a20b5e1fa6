"""Sheared-LLaMA-style conversion: shards merged into one fp16 file that transformers loads."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file

from wmtp_assets.files.hashing import read_sha256sums, sha256_file
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.convert_hf_llama import convert_hf_llama
from wmtp_assets.models.fp16_cast import Float16RangeError
from wmtp_assets.models.fp16_conversion import ConversionReport
from wmtp_assets.models.hf_llama import HFConfigError
from wmtp_assets.models.shapes import ShapeMismatchError
from wmtp_assets.models.tokenizer_files import load_sentencepiece, write_tokenizer_folder
from wmtp_assets.models.upstream_consistency import UpstreamContradictionError
from wmtp_assets_tests.models.checkpoint_fixtures import (
    coreutils_accepts,
    make_tokenizer,
    recorded_provenance,
)

REFERENCE_SHA = "ab" * 32
TOKENS = torch.tensor([[1, 5, 77, 300, 12, 9, 400, 2]])


def _tiny_model(vocab_size: int) -> transformers.LlamaForCausalLM:
    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab_size,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def _write_bin_shards(raw: Path, state: dict[str, torch.Tensor]) -> None:
    """Two ``.bin`` shards and an index, as transformers 4.x wrote them, with inv_freq buffers."""
    names = sorted(state)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, 8, 2).float() / 8))
    weight_map: dict[str, str] = {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2 :]), start=1):
        file_name = f"pytorch_model-{i:05d}-of-00002.bin"
        shard = {n: state[n].clone() for n in part}
        shard[f"model.layers.{i - 1}.self_attn.rotary_emb.inv_freq"] = inv_freq
        torch.save(shard, raw / file_name)
        weight_map |= dict.fromkeys(shard, file_name)
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (raw / "pytorch_model.bin.index.json").write_text(json.dumps(index))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor, str]:
    """(raw folder, the fp32 source model's logits, tokenizer sha256)."""
    root = tmp_path_factory.mktemp("hf")
    tokenizer_model = make_tokenizer(root / "tok" / "tokenizer.model")
    tokenizer_sha = sha256_file(tokenizer_model)
    model = _tiny_model(load_sentencepiece(tokenizer_model).vocab_size())
    with torch.no_grad():
        logits = model(TOKENS).logits
    saved = root / "saved"
    model.save_pretrained(saved)
    raw = root / "raw"
    raw.mkdir()
    config = json.loads((saved / "config.json").read_text())
    config["torch_dtype"] = "float32"
    (raw / "config.json").write_text(json.dumps(config))
    (raw / "generation_config.json").write_text('{"bos_token_id": 1, "eos_token_id": 2}')
    _write_bin_shards(raw, {k: v.contiguous() for k, v in model.state_dict().items()})
    write_tokenizer_folder(tokenizer_model, raw, tokenizer_sha)
    return raw, logits, tokenizer_sha


def _copy_raw(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def _convert(raw: Path, dirs: ModelDirs, **kwargs: object) -> ConversionReport:
    outcome = convert_hf_llama(
        raw,
        dirs,
        recorded_provenance(raw, "models/princeton-nlp/Sheared-LLaMA-2.7B"),
        None,
        REFERENCE_SHA,
        "test-v1",
        **kwargs,  # type: ignore[arg-type]
    )
    assert outcome.status == "converted" and outcome.report is not None
    return outcome.report


def test_converts_and_loads_with_transformers(
    source: tuple[Path, torch.Tensor, str], tmp_path: Path
) -> None:
    raw, source_logits, tokenizer_sha = source
    dirs = ModelDirs(tmp_path / "ref-sheared-llama-2.7b")
    messages: list[str] = []
    report = _convert(raw, dirs, progress=messages.append)
    assert report.dtype == "float16" and report.dropped_keys == [
        "model.layers.0.self_attn.rotary_emb.inv_freq",
        "model.layers.1.self_attn.rotary_emb.inv_freq",
    ]
    assert report.n_tensors == 2 * 9 + 3 and messages[-2].startswith("tensor 21/21")
    assert messages[-1] == "9 raw files hash to their SOURCE.json SHA256"
    tensors = load_file(dirs.weights)
    assert all(t.dtype == torch.float16 for t in tensors.values())
    assert "model.layers.0.self_attn.k_proj.weight" in tensors and tensors[
        "model.layers.0.self_attn.k_proj.weight"
    ].shape == (16, 32), "k/v sized by num_key_value_heads"
    sums = read_sha256sums(dirs.sha256sums)
    assert sums["model.safetensors"] == report.sha256 and coreutils_accepts(dirs)
    sealed = {n for n in sums if n != "../metadata.json"}
    on_disk = {
        os.path.relpath(p, dirs.safetensors)
        for p in dirs.root.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and p.relative_to(dirs.root).parts[0] not in ("raw", "proof")
    } - {"SHA256SUMS", "../metadata.json"}
    assert sealed == on_disk, "the seal lists every file of the artifact"
    assert dirs.source_trace.is_file(), "the source's trace is recorded beside the artifact"
    assert sha256_file(dirs.weights) == report.sha256

    assert (dirs.tokenizer / "tokenizer.model").read_bytes() == (
        raw / "tokenizer.model"
    ).read_bytes()
    for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json"):
        assert (dirs.safetensors / name).read_bytes() == (dirs.tokenizer / name).read_bytes()
    config = json.loads((dirs.configs / "config.json").read_text())
    assert config["torch_dtype"] == "float16"
    assert (dirs.safetensors / "config.json").read_bytes() == (
        dirs.configs / "config.json"
    ).read_bytes()
    assert (dirs.safetensors / "generation_config.json").exists()

    metadata = json.loads(dirs.metadata.read_text())
    assert metadata["implementation"] == "hf_llama"
    assert metadata["model_name"] == "ref-sheared-llama-2.7b"
    assert metadata["tokenizer_shared_with"] == "meta-llama-mtp"
    assert metadata["tokenizer"]["sha256"] == tokenizer_sha
    assert metadata["tokenizer"]["shared_with_sha256"] == REFERENCE_SHA
    assert metadata["dtype"] == "float16" and metadata["n_params"] == report.n_params
    assert metadata["source"]["kind"] == "mirror"
    assert metadata["files"]["safetensors/model.safetensors"] == report.sha256

    root = transformers.AutoModelForCausalLM.from_pretrained(dirs.root).eval()  # hf_folder
    loaded = transformers.AutoModelForCausalLM.from_pretrained(dirs.safetensors).eval()
    for ours, theirs in zip(root.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)
    assert next(loaded.parameters()).dtype == torch.float16
    as_fp32 = transformers.AutoModelForCausalLM.from_pretrained(
        dirs.safetensors, dtype=torch.float32
    ).eval()
    with torch.no_grad():
        logits = as_fp32(TOKENS).logits
        half_logits = loaded(TOKENS).logits.float()
    torch.testing.assert_close(logits, source_logits, atol=2e-3, rtol=2e-2)
    torch.testing.assert_close(half_logits, source_logits, atol=1e-2, rtol=5e-2)


def test_transformers_safetensors_shards(
    source: tuple[Path, torch.Tensor, str], tmp_path: Path
) -> None:
    """Shards written by transformers itself (model.safetensors.index.json) convert too."""
    raw_bin, _, _ = source
    raw = tmp_path / "raw"
    model = transformers.AutoModelForCausalLM.from_pretrained(raw_bin.parent / "saved")
    model.save_pretrained(raw, max_shard_size="40KB")
    assert (raw / "model.safetensors.index.json").exists()
    for name in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy(raw_bin / name, raw / name)
    dirs = ModelDirs(tmp_path / "out")
    report = _convert(raw, dirs)
    assert report.dropped_keys == [] and report.n_tensors == 21
    saved = load_file(raw_bin.parent / "saved" / "model.safetensors")
    assert load_file(dirs.weights).keys() == saved.keys()


def test_same_input_same_bytes(source: tuple[Path, torch.Tensor, str], tmp_path: Path) -> None:
    raw, _, _ = source
    first = _convert(raw, ModelDirs(tmp_path / "a"))
    second = _convert(raw, ModelDirs(tmp_path / "b"))
    assert first.sha256 == second.sha256
    assert (tmp_path / "a/safetensors/model.safetensors").read_bytes() == (
        tmp_path / "b/safetensors/model.safetensors"
    ).read_bytes()


def _tamper(raw: Path, shard: str, edit: dict[str, torch.Tensor | None]) -> None:
    path = raw / shard
    state = torch.load(path, weights_only=True)
    index_path = raw / "pytorch_model.bin.index.json"
    index = json.loads(index_path.read_text())
    for name, tensor in edit.items():
        if tensor is None:
            del state[name]
            del index["weight_map"][name]
        else:
            state[name] = tensor
            index["weight_map"][name] = shard
    torch.save(state, path)
    index_path.write_text(json.dumps(index))


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (
            {"model.norm.weight": torch.ones(31)},
            ShapeMismatchError,
            r"config.json; mis-shaped 1: model.norm.weight "
            r"\(in pytorch_model-0000\d-of-00002.bin\) is \[31\], expected \[32\]",
        ),
        (
            {"model.extra.weight": torch.ones(2)},
            ShapeMismatchError,
            r"unexpected 1: model.extra.weight \(in pytorch_model-0000\d-of-00002.bin\)",
        ),
        (
            {"model.norm.weight": None},
            ShapeMismatchError,
            r"missing 1: model.norm.weight$",
        ),
        (
            {"model.norm.weight": torch.full((32,), 7e4)},
            Float16RangeError,
            r"tensor 'model.norm.weight' has values that overflow",
        ),
        (
            {"model.norm.weight": torch.arange(32)},
            TypeError,
            r"not float.*model.norm.weight",
        ),
    ],
    ids=["shape", "unexpected", "missing", "overflow", "int"],
)
def test_faults_keep_previous_artifact(
    source: tuple[Path, torch.Tensor, str],
    tmp_path: Path,
    edit: dict[str, torch.Tensor | None],
    error: type[Exception],
    message: str,
) -> None:
    good_raw, _, _ = source
    dirs = ModelDirs(tmp_path / "out")
    good = _convert(good_raw, dirs)
    # the lock file records its last holder (pid, time): not part of the artifact
    before = {p: p.read_bytes() for p in dirs.root.rglob("*") if p.is_file() and p.name != ".lock"}
    raw = _copy_raw(good_raw, tmp_path / "raw")
    index = json.loads((raw / "pytorch_model.bin.index.json").read_text())
    shard = index["weight_map"].get("model.norm.weight", "pytorch_model-00002-of-00002.bin")
    _tamper(raw, shard, edit)
    with pytest.raises(error, match=message) as info:
        _convert(raw, dirs)
    assert str(raw) in str(info.value)
    after = {p: p.read_bytes() for p in dirs.root.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before, "the previous good artifact is untouched"
    assert _convert(good_raw, dirs).sha256 == good.sha256


def test_not_a_llama_config(source: tuple[Path, torch.Tensor, str], tmp_path: Path) -> None:
    raw = _copy_raw(source[0], tmp_path / "raw")
    config = json.loads((raw / "config.json").read_text())
    config["architectures"] = ["MistralForCausalLM"]
    (raw / "config.json").write_text(json.dumps(config))
    with pytest.raises(HFConfigError, match="does not include LlamaForCausalLM"):
        _convert(raw, ModelDirs(tmp_path / "out"))
    assert not (tmp_path / "out" / "safetensors" / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"rope_theta": 500000.0}, r"rope_theta is 500000.0 but .*inv_freq implies 10000"),
        ({"hidden_size": 64, "intermediate_size": 64}, r"hidden_size is 64 but .*implies 32"),
    ],
    ids=["rope_theta", "hidden_size"],
)
def test_a_config_contradicting_its_shards_is_refused(
    source: tuple[Path, torch.Tensor, str], tmp_path: Path, edit: dict, message: str
) -> None:
    """Issue 18 (3): config.json is held to the shards' shapes and inv_freq buffers."""
    raw = _copy_raw(source[0], tmp_path / "raw")
    config = json.loads((raw / "config.json").read_text())
    (raw / "config.json").write_text(json.dumps(config | edit))
    with pytest.raises(UpstreamContradictionError, match=message) as info:
        _convert(raw, ModelDirs(tmp_path / "out"))
    assert str(raw / "config.json") in str(info.value)
    assert info.value.file == str(raw / "config.json")  # the step failure's metadata
    assert not (tmp_path / "out" / "safetensors" / "model.safetensors").exists()
