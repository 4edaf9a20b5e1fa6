"""Proof of the proof: corrupt one byte of each kind of artifact and show that the intended
check fails with a message that says what and where, and that the revalidation run fails."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import dagster as dg

from wmtp_assets.files.layout import Layout
from wmtp_assets.graph_runs import Revalidation, verify_everything
from wmtp_assets.settings import Settings


def _revalidate(settings: Settings, **selection: list[str]) -> Revalidation:
    return verify_everything(settings, dg.DagsterInstance.ephemeral(), **selection)


def _failed(result: Revalidation) -> dict[str, str]:
    return {f"{r.asset}:{r.check}": r.summary for r in result.rows if not r.passed}


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_untouched_demo_storage_passes_every_check(copied_demo_storage: Settings) -> None:
    result = _revalidate(copied_demo_storage)
    assert _failed(result) == {}
    assert result.failed_runs == []
    assert len(result.rows) > 70


def test_a_flipped_tensor_byte_fails_sha256(copied_demo_storage: Settings) -> None:
    weights = Layout(copied_demo_storage.storage_root).model("micro_mtp").weights
    _flip_byte(weights, weights.stat().st_size - 3)
    result = _revalidate(copied_demo_storage, models=["micro_mtp"], partitions=[])
    failed = _failed(result)
    assert set(failed) == {"models/micro_mtp:sha256_matches"}
    assert str(weights) in failed["models/micro_mtp:sha256_matches"]
    assert "SHA256SUMS" in failed["models/micro_mtp:sha256_matches"]
    assert result.failed_runs == ["models"]


def test_a_header_dtype_changed_to_i16_fails_dtype_check(copied_demo_storage: Settings) -> None:
    weights = Layout(copied_demo_storage.storage_root).model("micro_ref").weights
    data = bytearray(weights.read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + length]
    position = header.index(b'"F16"')
    header[position : position + 5] = b'"I16"'
    data[8 : 8 + length] = header
    weights.write_bytes(bytes(data))
    result = _revalidate(copied_demo_storage, models=["micro_ref"], partitions=[])
    failed = _failed(result)
    assert "models/micro_ref:dtype_is_float16" in failed
    assert "not F16" in failed["models/micro_ref:dtype_is_float16"]
    assert "I16" in failed["models/micro_ref:dtype_is_float16"]
    assert "models/micro_ref:sha256_matches" in failed
    assert result.failed_runs == ["models"]


def test_a_corrupted_jsonl_row_fails_the_schema_check(copied_demo_storage: Settings) -> None:
    jsonl = Layout(copied_demo_storage.storage_root).dataset("mbpp").jsonl("test")
    lines = jsonl.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"output":', b'"outpux":', 1)
    jsonl.write_bytes(b"".join(lines))
    result = _revalidate(copied_demo_storage, models=[], partitions=["mbpp.test"])
    failed = _failed(result)
    assert "datasets/processed:records_match_schema" in failed
    message = failed["datasets/processed:records_match_schema"]
    assert "line 1" in message and "output" in message
    assert "datasets/stats:counts_match_stats" in failed  # the SHA256 no longer matches either
    assert result.failed_runs == ["mbpp.test"]


def test_a_changed_stats_count_fails_counts_match_stats(copied_demo_storage: Settings) -> None:
    dirs = Layout(copied_demo_storage.storage_root).dataset("codecontests")
    stats_file = dirs.stats_file("valid")
    stats = json.loads(stats_file.read_text())
    stats["records"] += 1
    stats_file.write_text(json.dumps(stats))
    result = _revalidate(copied_demo_storage, models=[], partitions=["codecontests.valid"])
    failed = _failed(result)
    assert set(failed) == {"datasets/stats:counts_match_stats"}
    assert f"'records': {stats['records'] - 1}" in failed["datasets/stats:counts_match_stats"]
    assert result.failed_runs == ["codecontests.valid"]


def test_a_changed_tokenizer_fails_the_shared_tokenizer_check(
    copied_demo_storage: Settings,
) -> None:
    tokenizer = Layout(copied_demo_storage.storage_root).model("micro_mtp").tokenizer
    _flip_byte(tokenizer / "tokenizer.model", 100)
    result = _revalidate(copied_demo_storage, models=["micro_mtp"], partitions=[])
    failed = _failed(result)
    assert "models/micro_mtp:tokenizer_sha256_shared" in failed
    message = failed["models/micro_mtp:tokenizer_sha256_shared"]
    assert "tokenizer.model" in message and "WMTP_TOKENIZER_SHA256" in message
    assert result.failed_runs == ["models"]
