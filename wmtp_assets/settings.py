"""The public environment contract (ARCHITECTURE §2) as one validated pydantic model.

Core code receives a ``Settings`` object; only ``Settings.from_env`` reads the environment, so
the same values can come from Dagster resource config, a notebook or a test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

LLAMA2_TOKENIZER_SHA256 = "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347"

Device = Literal["auto", "cuda", "mps", "cpu"]


class Settings(BaseModel):
    """Where artifacts live, where upstream files come from, and the rules they must meet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    storage_root: Path = Field(default=Path("storage"), description="WMTP_STORAGE_ROOT")
    mirror: Path | None = Field(default=None, description="WMTP_MIRROR; None reads the Hub")
    tokenizer_sha256: str = Field(
        default=LLAMA2_TOKENIZER_SHA256, description="WMTP_TOKENIZER_SHA256"
    )
    max_tokens: int = Field(default=2048, gt=0, description="WMTP_MAX_TOKENS")
    device: Device = Field(default="auto", description="WMTP_DEVICE")

    @field_validator("tokenizer_sha256")
    @classmethod
    def _hex_sha256(cls, value: str) -> str:
        value = value.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError(f"WMTP_TOKENIZER_SHA256 must be 64 hex digits, got {value!r}")
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``WMTP_*`` variables; unset or empty ones take the defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field, var in (
            ("storage_root", "WMTP_STORAGE_ROOT"),
            ("mirror", "WMTP_MIRROR"),
            ("tokenizer_sha256", "WMTP_TOKENIZER_SHA256"),
            ("max_tokens", "WMTP_MAX_TOKENS"),
            ("device", "WMTP_DEVICE"),
        ):
            if env.get(var):
                values[field] = env[var]
        return cls.model_validate(values)
