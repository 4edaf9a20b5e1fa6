"""verify_raw: every file SOURCE.json lists, re-hashed against the record, and no other file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from wmtp_assets.files.atomic import TMP_MARK
from wmtp_assets.sources import SOURCE_FILE, MirrorSource, verify_raw
from wmtp_assets.sources.provenance import RawSetError, listed_files
from wmtp_assets_tests.sources.refs import ref

REPO = "deepmind/code_contests"
FILES = {
    "data/train-00000-of-00002.parquet": os.urandom(50_000),
    "data/train-00001-of-00002.parquet": os.urandom(20_000),
}


def _fetched_raw(tmp_path: Path) -> Path:
    repo_dir = tmp_path / "mirror" / "datasets" / REPO
    for path, content in FILES.items():
        (repo_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (repo_dir / path).write_bytes(content)
    raw = tmp_path / "raw"
    MirrorSource(tmp_path / "mirror").fetch(ref(REPO, "dataset", "main", ["data/*"]), raw)
    return raw


def test_intact_raw_has_no_findings(tmp_path: Path) -> None:
    assert verify_raw(_fetched_raw(tmp_path)) == []


def test_flipped_byte_is_found_with_both_hashes(tmp_path: Path) -> None:
    raw = _fetched_raw(tmp_path)
    path = "data/train-00000-of-00002.parquet"
    local = raw / path
    before = local.stat()
    rotten = bytearray(FILES[path])
    rotten[12_345] ^= 0x01
    local.write_bytes(rotten)
    os.utime(local, ns=(before.st_atime_ns, before.st_mtime_ns))

    [finding] = verify_raw(raw)

    assert finding.file == str(local)
    assert finding.expected_sha256 == hashlib.sha256(FILES[path]).hexdigest()
    assert finding.found_sha256 == hashlib.sha256(bytes(rotten)).hexdigest()
    assert str(local) in finding.message and finding.expected_sha256 in finding.message


def test_missing_file_and_missing_or_broken_record_are_findings(tmp_path: Path) -> None:
    raw = _fetched_raw(tmp_path)
    path = "data/train-00001-of-00002.parquet"
    gone = raw / path
    gone.unlink()

    [missing] = verify_raw(raw)
    assert missing.file == str(gone) and missing.found_sha256 is None
    assert missing.expected_sha256 == hashlib.sha256(FILES[path]).hexdigest()

    (raw / SOURCE_FILE).write_text("{not json")
    [broken] = verify_raw(raw)
    assert broken.file == str(raw / SOURCE_FILE) and "\n" not in broken.message
    (raw / SOURCE_FILE).unlink()
    [absent] = verify_raw(raw)
    assert absent.file == str(raw / SOURCE_FILE) and "missing" in absent.message


def test_a_file_the_record_does_not_list_is_a_finding_and_refused(tmp_path: Path) -> None:
    """Issue 18: an unfetched shard put beside the fetched ones was neither reported nor kept
    out of processing (readers glob the folder)."""
    raw = _fetched_raw(tmp_path)
    stray = raw / "data/train-00002-of-00002.parquet"
    stray.write_bytes(os.urandom(1_000))
    (raw / "data" / f".x{TMP_MARK}123").write_bytes(b"a writer's temporary")

    [finding] = verify_raw(raw)
    assert finding.unlisted and finding.file == str(stray) and str(stray) in finding.message
    is_train = lambda path: path.startswith("data/train-")  # noqa: E731
    assert [f.file for f in verify_raw(raw, lambda p: False, is_train)] == [str(stray)]
    assert verify_raw(raw, lambda p: False, lambda p: False) == []

    with pytest.raises(RawSetError, match=f"^{stray}: in raw/ but not listed in SOURCE.json"):
        listed_files(raw, is_train, is_train)
    stray.unlink()
    assert listed_files(raw, is_train, is_train) == {
        raw / path: hashlib.sha256(content).hexdigest() for path, content in FILES.items()
    }


def test_listed_files_names_a_missing_shard_or_record(tmp_path: Path) -> None:
    raw = _fetched_raw(tmp_path)
    everything = lambda path: True  # noqa: E731
    gone = raw / "data/train-00001-of-00002.parquet"
    gone.write_bytes(b"short")
    with pytest.raises(RawSetError, match=f"^{gone}: listed in SOURCE.json"):
        listed_files(raw, everything, everything)
    (raw / SOURCE_FILE).unlink()
    with pytest.raises(RawSetError, match=f"^{raw / SOURCE_FILE}: missing"):
        listed_files(raw, everything, everything)
