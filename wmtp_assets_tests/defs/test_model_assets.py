"""The model assets through Dagster's own ``materialize``, from a demo mirror."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import dagster as dg
import pytest
import sentencepiece as spm
import torch
import transformers
from safetensors import safe_open

from wmtp_assets.defs.models import (
    MICRO_MTP,
    MICRO_REF,
    TOKENIZER,
    meta_llama_mtp_raw,
    meta_llama_mtp_tokenizer,
    micro_mtp,
    micro_ref,
)
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.files.hashing import read_sha256sums, sha256_file
from wmtp_assets.files.layout import Layout
from wmtp_assets.settings import Settings

ASSETS = [meta_llama_mtp_raw, meta_llama_mtp_tokenizer, micro_mtp, micro_ref]


def _materialize(settings: Settings, selection: list[dg.AssetKey] | None = None):
    return dg.materialize(
        ASSETS,
        selection=selection,
        resources={"wmtp": WmtpResource.from_settings(settings)},
        instance=dg.DagsterInstance.ephemeral(),
    )


def _header(path: Path) -> dict:
    with open(path, "rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        return json.loads(fh.read(length))


def test_micro_models_materialize_reproducibly_with_the_configured_size(
    demo_settings: Settings,
) -> None:
    assert _materialize(demo_settings).success
    layout = Layout(demo_settings.storage_root)
    first = {k: sha256_file(layout.model(k).weights) for k in ("micro_mtp", "micro_ref")}
    assert _materialize(demo_settings, [MICRO_MTP, MICRO_REF]).success
    second = {k: sha256_file(layout.model(k).weights) for k in ("micro_mtp", "micro_ref")}
    assert first == second

    vocab = spm.SentencePieceProcessor(
        model_file=str(layout.model("meta_llama_mtp").tokenizer / "tokenizer.model")
    ).vocab_size()
    dirs = layout.model("micro_mtp")
    header = _header(dirs.weights)
    names = {k for k in header if k != "__metadata__"}
    blocks = {".".join(n.split(".")[:2]) for n in names if n.startswith(("layers", "extra"))}
    assert blocks == {"layers.0", "extra_heads.0", "extra_heads.1", "extra_heads.2"}
    assert {header[n]["dtype"] for n in names} == {"F16"}
    # Re-derive the size from the spec (dim 512, FFN 1536, 4 blocks), independent of the code.
    dim, ffn = 512, 1536
    per_block = 4 * dim * dim + 3 * dim * ffn + 2 * dim
    n_params = 2 * vocab * dim + dim + 4 * per_block
    header_len = struct.unpack("<Q", dirs.weights.read_bytes()[:8])[0]
    assert dirs.weights.stat().st_size == 8 + header_len + 2 * n_params
    metadata = json.loads(dirs.metadata.read_text())
    assert metadata["n_params"] == n_params
    assert metadata["dtype"] == "float16"
    assert metadata["target_device"] == "mps"
    assert metadata["tokenizer_shared_with"] == "meta-llama-mtp"
    assert metadata["files"]["safetensors/model.safetensors"] == first["micro_mtp"]
    assert read_sha256sums(dirs.sha256sums)["model.safetensors"] == first["micro_mtp"]
    config = json.loads((dirs.configs / "config.json").read_text())
    assert (config["hidden_size"], config["intermediate_size"]) == (512, 1536)
    assert config["n_future_tokens"] == 4


def test_micro_mtp_loads_into_the_transformer(demo_settings: Settings) -> None:
    from wmtp_assets.models.mtp.args import ModelArgs
    from wmtp_assets.models.mtp.model import Transformer

    assert _materialize(demo_settings).success
    dirs = Layout(demo_settings.storage_root).model("micro_mtp")
    args = ModelArgs.from_hf_config(dirs.configs / "config.json")
    model = Transformer(args)
    with safe_open(dirs.weights, framework="pt") as fh:
        state = {k: fh.get_tensor(k).float() for k in fh.keys()}  # noqa: SIM118
    model.load_meta_state_dict(state, source=str(dirs.weights))
    logits = model(torch.tensor([[1, 5, 9, 3]]))
    assert logits.shape == (1, 4, 4, args.vocab_size)
    assert torch.isfinite(logits).all()


def test_transformers_loads_micro_ref_and_tokenizer(demo_settings: Settings) -> None:
    assert _materialize(demo_settings).success
    layout = Layout(demo_settings.storage_root)
    folder = layout.model("micro_ref").safetensors
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.num_hidden_layers == 4
    tokenizer = transformers.LlamaTokenizer.from_pretrained(layout.model("micro_ref").tokenizer)
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    # no run of spaces: on "\n    b" transformers 5.24's Llama tokenizer built from the real
    # Llama-2 tokenizer.model gives "▁▁▁▁", "b" where SentencePiece gives "▁▁▁", "▁b"
    text = "def add(a, b):\n return a + b"
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == sp.encode(text)
    out = model(torch.tensor([tokenizer(text)["input_ids"]]))
    assert torch.isfinite(out.logits).all()


def test_tokenizer_with_the_wrong_sha256_fails(demo_settings: Settings) -> None:
    wrong = demo_settings.model_copy(update={"tokenizer_sha256": "0" * 64})
    result = dg.materialize(
        ASSETS,
        selection=[meta_llama_mtp_raw.key, TOKENIZER],
        resources={"wmtp": WmtpResource.from_settings(wrong)},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure.cause is not None
    assert "WMTP_TOKENIZER_SHA256" in failure.cause.message
    assert not (
        Layout(wrong.storage_root).model("meta_llama_mtp").tokenizer / "tokenizer.model"
    ).exists()


def test_checks_after_a_materialization_reuse_the_writers_hashes(
    demo_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the run that wrote them, the checks take the SHA256 the writer computed for files
    still as written (one read of the 13 GB weights saved); a revalidation reads them all."""
    import hashlib
    import types

    from wmtp_assets.defs.checks import MODEL_CHECKS
    from wmtp_assets.files import hashing

    hashed: list[int] = []  # bytes the checks' hashing module hashes

    class Counted:
        def __init__(self) -> None:
            self.inner = hashlib.sha256()

        def update(self, data: bytes | memoryview) -> None:
            hashed.append(len(data))
            self.inner.update(data)

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    def file_digest(fh: object, name: str) -> object:
        digest = Counted()
        while chunk := fh.read(1 << 20):  # type: ignore[attr-defined]
            digest.update(chunk)
        return digest

    shim = types.SimpleNamespace(sha256=Counted, file_digest=file_digest)
    monkeypatch.setattr(hashing, "hashlib", shim)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*ASSETS, *MODEL_CHECKS],
        selection=dg.AssetSelection.assets(*(a.key for a in ASSETS[:2]), MICRO_MTP),
        resources={"wmtp": WmtpResource.from_settings(demo_settings)},
        instance=instance,
    )
    assert result.success
    evaluations = {
        (e.asset_key, e.check_name): e.passed for e in result.get_asset_check_evaluations()
    }
    assert evaluations[(MICRO_MTP, "sha256_matches")]
    assert evaluations[(MICRO_MTP, "unchanged_since_materialization")]
    weights = Layout(demo_settings.storage_root).model("micro_mtp").weights
    assert sum(hashed) < weights.stat().st_size, "the writer's hash of the weights was reused"


def test_a_seeded_hash_does_not_hide_a_rewrite(tmp_path: Path) -> None:
    """A file rewritten after its writer hashed it (new inode) is hashed again: the seed
    cannot make a check pass on changed bytes."""
    from wmtp_assets.files.hashing import file_identity, shared_hashes

    path = tmp_path / "model.safetensors"
    path.write_bytes(b"written")
    seed = {path: (sha256_file(path), file_identity(path))}
    path.unlink()
    path.write_bytes(b"changed")
    with shared_hashes(seed):
        assert sha256_file(path) == sha256_file(tmp_path / "model.safetensors")
        assert sha256_file(path) != seed[path][0]
