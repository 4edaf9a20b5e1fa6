"""The demo mirror ships the real Llama-2 tokenizer for every model repo, and the Starling
reward model in its upstream file layout."""

from __future__ import annotations

import hashlib
from pathlib import Path

from wmtp_assets.demo.mirror import DemoMirror
from wmtp_assets.demo.tokenizer import LLAMA2_TOKENIZER
from wmtp_assets.settings import Settings

# REFERENCE §3; written out here, not read from the code under test
LLAMA2_SHA256 = "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_vendored_tokenizer_is_llama2_with_its_notice() -> None:
    assert _sha256(LLAMA2_TOKENIZER) == LLAMA2_SHA256
    assert LLAMA2_TOKENIZER.stat().st_size == 499_723
    notice = (LLAMA2_TOKENIZER.parent / "NOTICE.md").read_text(encoding="utf-8")
    assert "Llama 2 Community License" in notice and "Meta Platforms" in notice


def test_both_model_repos_carry_it_and_the_default_setting_accepts_it(
    demo_mirror: DemoMirror,
) -> None:
    models = demo_mirror.root / "models"
    for repo in (
        "facebook/multi-token-prediction",
        "princeton-nlp/Sheared-LLaMA-2.7B",
        "berkeley-nest/Starling-RM-7B-alpha",
    ):
        assert _sha256(models / repo / "tokenizer.model") == LLAMA2_SHA256
    assert demo_mirror.tokenizer_sha256 == Settings().tokenizer_sha256 == LLAMA2_SHA256


def test_starling_repo_has_the_upstream_files_and_the_cards_state_dict(
    demo_mirror: DemoMirror,
) -> None:
    """One torch-zip ``pytorch_model.bin`` (weights_only loads it) with the reward module's
    state dict: ``transformer.<LlamaModel keys>`` and ``v_head.weight`` [1, hidden]."""
    import json
    import zipfile

    import torch

    repo = demo_mirror.root / "models" / "berkeley-nest" / "Starling-RM-7B-alpha"
    assert sorted(p.name for p in repo.iterdir() if not p.name.startswith(".")) == [
        "config.json",
        "pytorch_model.bin",
        "tokenizer.model",
    ]
    assert zipfile.is_zipfile(repo / "pytorch_model.bin")
    state = torch.load(repo / "pytorch_model.bin", weights_only=True)
    config = json.loads((repo / "config.json").read_text())
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    assert state["v_head.weight"].shape == (1, hidden)
    assert state["transformer.embed_tokens.weight"].shape == (config["vocab_size"], hidden)
    assert len(state) == 1 + 1 + 1 + 9 * layers  # embed, norm, v_head, 9 per layer
    assert not any(k.startswith(("lm_head", "model.")) for k in state)
