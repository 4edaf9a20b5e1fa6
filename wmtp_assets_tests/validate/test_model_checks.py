"""Model checks over a converted Meta artifact whose params.json says ``"vocab_size": -1``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.models.convert_meta import convert_meta_mtp
from wmtp_assets.models.tokenizer_files import load_sentencepiece
from wmtp_assets.validate import model_checks as mc
from wmtp_assets_tests.models.checkpoint_fixtures import META_PARAMS, make_meta_raw, make_tokenizer


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> ModelDirs:
    root = tmp_path_factory.mktemp("meta")
    tokenizer = make_tokenizer(root / "tok" / "tokenizer.model")
    raw = make_meta_raw(root / "raw", tokenizer)
    assert META_PARAMS["vocab_size"] == -1
    dirs = ModelDirs(root / "out")
    convert_meta_mtp(raw, dirs, None, None, "test-v1")
    dirs.tokenizer.mkdir(parents=True, exist_ok=True)
    (dirs.tokenizer / "tokenizer.model").write_bytes(tokenizer.read_bytes())
    return dirs


def test_vocab_minus_one_is_the_tokenizers(artifact: ModelDirs) -> None:
    """The stored vocab is what the model is built with, not the file's -1 read by hand."""
    vocab = load_sentencepiece(artifact.tokenizer / "tokenizer.model").vocab_size()
    assert json.loads((artifact.configs / "params.json").read_text())["vocab_size"] == -1
    assert mc.stored_vocab_size(artifact, "meta") == vocab
    folders = [artifact.tokenizer]
    sha = sha256_file(artifact.tokenizer / "tokenizer.model")
    assert mc.tokenizer_sha256_shared(
        folders, sha, {"m": mc.stored_vocab_size(artifact, "meta")}
    ).passed
    assert not mc.tokenizer_sha256_shared(folders, sha, {"m": vocab + 1}).passed


def test_keys_and_shapes_name_what_differs(artifact: ModelDirs, tmp_path: Path) -> None:
    artifact = ModelDirs(Path(shutil.copytree(artifact.root, tmp_path / "copy")))
    assert mc.keys_and_shapes_match_config(artifact, "meta").passed
    assert mc.size_matches_config(artifact, "meta").passed
    tensors = load_file(artifact.weights)
    tensors["layers.9.bogus"] = tensors.pop("norm.weight")[:3].clone()
    save_file(tensors, artifact.weights)
    outcome = mc.keys_and_shapes_match_config(artifact, "meta")
    assert not outcome.passed
    assert outcome.details["missing"] == ["norm.weight"]
    assert outcome.details["unexpected"] == ["layers.9.bogus"]
    assert not mc.size_matches_config(artifact, "meta").passed
