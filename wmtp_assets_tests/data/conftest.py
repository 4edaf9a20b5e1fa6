"""Shared fixtures: the Llama-2 tokenizer and one demo dataset mirror per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from wmtp_assets.data.partitions import Partition
from wmtp_assets.demo.dataset_mirror import build_dataset_mirror
from wmtp_assets.demo.tokenizer import LLAMA2_TOKENIZER
from wmtp_assets.files.layout import Layout


@pytest.fixture(scope="session")
def tokenizer() -> Path:
    """The real Llama-2 tokenizer: every count in these tests is a Llama-2 count."""
    return LLAMA2_TOKENIZER


@pytest.fixture(scope="session")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mirror")
    build_dataset_mirror(root)
    return root


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "storage")


def mirror_files(mirror: Path, key: str) -> list[Path]:
    """The demo mirror's shards of partition ``key``."""
    partition = Partition.parse(key)
    return partition.files_in(mirror / "datasets" / partition.spec.repo_id)
