"""Fixtures shared across the test tree: a demo mirror (built once) and settings pointing at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from wmtp_assets.demo.mirror import DemoMirror, build_demo_mirror
from wmtp_assets.settings import Settings


@pytest.fixture(scope="session")
def demo_mirror(tmp_path_factory: pytest.TempPathFactory) -> DemoMirror:
    return build_demo_mirror(tmp_path_factory.mktemp("mirror"))


@pytest.fixture
def demo_settings(demo_mirror: DemoMirror, tmp_path: Path) -> Settings:
    return Settings(
        storage_root=tmp_path / "storage",
        mirror=demo_mirror.root,
        tokenizer_sha256=demo_mirror.tokenizer_sha256,
        device="cpu",
    )
