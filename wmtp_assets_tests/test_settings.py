from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from wmtp_assets.settings import LLAMA2_TOKENIZER_SHA256, Settings


def test_defaults_follow_the_contract() -> None:
    settings = Settings.from_env({})
    assert settings.storage_root == Path("storage")
    assert settings.mirror is None
    assert settings.tokenizer_sha256 == LLAMA2_TOKENIZER_SHA256
    assert LLAMA2_TOKENIZER_SHA256.startswith("9e556afd") and LLAMA2_TOKENIZER_SHA256.endswith(
        "d347"
    )
    assert (settings.max_tokens, settings.device) == (2048, "auto")


def test_environment_overrides() -> None:
    settings = Settings.from_env(
        {
            "WMTP_STORAGE_ROOT": "/data",
            "WMTP_MIRROR": "/mirror",
            "WMTP_TOKENIZER_SHA256": "AB" * 32,
            "WMTP_MAX_TOKENS": "1024",
            "WMTP_DEVICE": "cuda",
        }
    )
    assert settings.storage_root == Path("/data")
    assert settings.mirror == Path("/mirror")
    assert settings.tokenizer_sha256 == "ab" * 32
    assert (settings.max_tokens, settings.device) == (1024, "cuda")


@pytest.mark.parametrize(
    ("var", "value"),
    [("WMTP_DEVICE", "tpu"), ("WMTP_MAX_TOKENS", "0"), ("WMTP_TOKENIZER_SHA256", "xyz")],
)
def test_bad_values_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Settings.from_env({var: value})
