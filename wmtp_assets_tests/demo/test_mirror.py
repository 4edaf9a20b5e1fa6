"""The demo mirror ships the real Llama-2 tokenizer for both model repos."""

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
    for repo in ("facebook/multi-token-prediction", "princeton-nlp/Sheared-LLaMA-2.7B"):
        assert _sha256(models / repo / "tokenizer.model") == LLAMA2_SHA256
    assert demo_mirror.tokenizer_sha256 == Settings().tokenizer_sha256 == LLAMA2_SHA256
