"""Fixtures of the source tests: a running Hub stand-in and an isolated Hugging Face home."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wmtp_assets_tests.sources.hub_standin import HubStandin


@pytest.fixture
def hub() -> Iterator[HubStandin]:
    """A Hub stand-in on 127.0.0.1, stopped after the test."""
    standin = HubStandin().start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide which token the client sees; none leaks in from the environment."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
