"""Shared fixtures: the Llama-2 tokenizer and one demo dataset mirror per test session; helpers
that find its shards and write CodeContests shards with invalid UTF-8."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wmtp_assets.data.arrow_rows import _binary_type
from wmtp_assets.data.partitions import Partition
from wmtp_assets.data.upstream_schema import CODECONTESTS_SCHEMA
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


def write_codecontests_with_bytes(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write CodeContests rows whose strings may be arbitrary bytes (invalid UTF-8)."""
    raw = pa.Table.from_pylist(
        rows, schema=pa.schema([f.with_type(_binary_type(f.type)) for f in CODECONTESTS_SCHEMA])
    )
    columns = [
        raw.column(i).combine_chunks().view(f.type) for i, f in enumerate(CODECONTESTS_SCHEMA)
    ]
    pq.write_table(pa.Table.from_arrays(columns, schema=CODECONTESTS_SCHEMA), path)
    return path
