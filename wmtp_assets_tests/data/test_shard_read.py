"""open_verified: one read of a shard, hashed and parsed; check_unchanged: a rewrite between the
hashed read and a worker's read is refused."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wmtp_assets.data.shard_read import ShardMismatchError, check_unchanged, open_verified


def _shard(path: Path, rows: int = 5000) -> Path:
    table = pa.table({"name": [f"p{i}" for i in range(rows)], "text": ["x" * 100] * rows})
    pq.write_table(table, path, row_group_size=1000)
    return path


def test_the_parsed_bytes_are_the_hashed_ones(tmp_path: Path) -> None:
    shard = _shard(tmp_path / "a.parquet")
    truth = hashlib.sha256(shard.read_bytes()).hexdigest()
    parquet, found, identity = open_verified(shard, truth)
    assert found == truth and identity[0] == shard.stat().st_size
    assert parquet.metadata.num_row_groups == 5
    assert parquet.read(columns=["name"]).equals(pq.read_table(shard, columns=["name"]))
    assert open_verified(shard, None)[1] == truth


def test_rot_is_refused_naming_the_file(tmp_path: Path) -> None:
    shard = _shard(tmp_path / "a.parquet")
    truth = hashlib.sha256(shard.read_bytes()).hexdigest()
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(data)
    with pytest.raises(ShardMismatchError, match=f"^{shard}: SHA256 [0-9a-f]{{64}} != SOURCE"):
        open_verified(shard, truth)


def test_a_rewrite_after_the_hashed_read_is_refused(tmp_path: Path) -> None:
    shard = _shard(tmp_path / "a.parquet")
    _, _, identity = open_verified(shard, None)
    check_unchanged(shard, identity)
    stat = shard.stat()
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    with pytest.raises(ShardMismatchError, match=f"^{shard}: changed while being processed"):
        check_unchanged(shard, identity)
