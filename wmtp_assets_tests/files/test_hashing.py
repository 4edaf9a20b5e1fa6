from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from wmtp_assets.files import hashing
from wmtp_assets.files.hashing import (
    CHUNK,
    ChecksumFileError,
    file_identity,
    git_blob_sha1,
    hashes_ahead,
    read_sha256sums,
    sha256_file,
    sha256_scan,
    sha256sums_bytes,
    shared_hashes,
)


def test_sha256_file_matches_hashlib_over_buffer_boundaries(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4099  # > 1 MiB and not a multiple of any read size
    path = tmp_path / "f"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    path.write_bytes(b"")
    assert sha256_file(path) == hashlib.sha256(b"").hexdigest()


def test_a_large_file_read_ahead_hashes_like_hashlib(tmp_path: Path) -> None:
    # past the size from which a reader thread runs ahead of the hash, not a whole chunk count
    data = hashlib.sha256(b"seed").digest() * ((72 << 20) // 32) + b"tail"
    path = tmp_path / "large"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_shared_hashes_read_a_file_once_and_a_changed_file_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "weights"
    path.write_bytes(b"a" * 1000)
    reads: list[str] = []
    real = hashlib.file_digest
    monkeypatch.setattr(
        hashlib, "file_digest", lambda fh, name: reads.append(name) or real(fh, name)
    )
    with shared_hashes():
        first, second = sha256_file(path), sha256_file(path)
        assert first == second == hashlib.sha256(b"a" * 1000).hexdigest()
        assert len(reads) == 1
        path.write_bytes(b"b" * 1001)  # another size: hashed again, not served stale
        assert sha256_file(path) == hashlib.sha256(b"b" * 1001).hexdigest()
        assert len(reads) == 2
    sha256_file(path)  # outside the block every call reads
    sha256_file(path)
    assert len(reads) == 4


def test_known_hashes_are_taken_only_for_the_identity_they_were_recorded_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer's hash seeds the step's checks while the file is the one it wrote; a rewrite
    in between (same size, new mtime or inode) is hashed from its bytes."""
    path = tmp_path / "weights"
    path.write_bytes(b"a" * 1000)
    recorded = hashlib.sha256(b"a" * 1000).hexdigest()
    reads: list[str] = []
    real = hashlib.file_digest
    monkeypatch.setattr(
        hashlib, "file_digest", lambda fh, name: reads.append(name) or real(fh, name)
    )
    with shared_hashes({path: (recorded, file_identity(path))}):
        assert sha256_file(path) == recorded
        scanned: list[bytes] = []
        assert sha256_scan(path, lambda chunk, _: scanned.append(bytes(chunk))) == recorded
        assert b"".join(scanned) == b"a" * 1000, "the scan still hands over every byte"
    assert reads == []
    identity = file_identity(path)
    replacement = tmp_path / "rewritten"
    replacement.write_bytes(b"b" * 1000)
    replacement.replace(path)  # same size, another inode: a rewrite after the seal
    with shared_hashes({path: (recorded, identity)}):
        assert sha256_file(path) == hashlib.sha256(b"b" * 1000).hexdigest()
    assert len(reads) == 1


def test_sha256_scan_hashes_and_hands_over_every_chunk(tmp_path: Path) -> None:
    data = bytes(range(256)) * (CHUNK // 256 * 2 + 3)  # more than two chunks, a ragged tail
    path = tmp_path / "f"
    path.write_bytes(data)
    seen: list[tuple[int, bytes]] = []
    digest = sha256_scan(path, lambda chunk, offset: seen.append((offset, bytes(chunk))))
    assert digest == hashlib.sha256(data).hexdigest()
    assert [offset for offset, _ in seen] == [0, CHUNK, 2 * CHUNK]
    assert b"".join(chunk for _, chunk in seen) == data


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_blob_sha1_is_what_git_computes(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    path.write_bytes(bytes(range(256)) * 2000)
    done = subprocess.run(
        ["git", "hash-object", "--no-filters", str(path)], capture_output=True, text=True
    )
    assert git_blob_sha1(path) == done.stdout.strip()


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="coreutils not installed")
def test_sha256sums_is_readable_by_coreutils(tmp_path: Path) -> None:
    folder = tmp_path / "safetensors"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "metadata.json").write_bytes(b"{}")
    entries = {
        "model.safetensors": sha256_file(folder / "model.safetensors"),
        "../metadata.json": sha256_file(tmp_path / "metadata.json"),
    }
    (folder / "SHA256SUMS").write_bytes(sha256sums_bytes(entries))
    done = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True)
    assert done.returncode == 0, done.stdout
    assert read_sha256sums(folder / "SHA256SUMS") == {
        "model.safetensors": hashlib.sha256(b"weights").hexdigest(),
        "../metadata.json": hashlib.sha256(b"{}").hexdigest(),
    }


def test_sha256sums_lists_first_entry_first_then_by_name() -> None:
    entries = {"../configs/a.json": "a" * 64, "model.safetensors": "b" * 64, "x": "c" * 64}
    assert sha256sums_bytes(entries).decode().splitlines() == [
        f"{'a' * 64}  ../configs/a.json",
        f"{'b' * 64}  model.safetensors",
        f"{'c' * 64}  x",
    ]
    lines = sha256sums_bytes(entries, first="model.safetensors").decode().splitlines()
    assert lines == [
        f"{'b' * 64}  model.safetensors",
        f"{'a' * 64}  ../configs/a.json",
        "c" * 64 + "  x",
    ]
    with pytest.raises(KeyError, match="missing"):
        sha256sums_bytes(entries, first="missing")


def test_malformed_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "SHA256SUMS"
    path.write_text("deadbeef  model.safetensors\n")
    with pytest.raises(ChecksumFileError, match=r"SHA256SUMS: line 1"):
        read_sha256sums(path)


def _rewrite_keeping_identity(path: Path, data: bytes) -> None:
    """New bytes of the same size, in place (same inode), mtime set back."""
    stat = path.stat()
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _hashed_by_the_thread(path: Path) -> None:
    """Wait until the thread hashing ahead is done with ``path`` (it has started it)."""
    assert hashing._AHEAD is not None
    future = hashing._AHEAD.take(hashing._identity(path, os.stat(path)))
    assert future is not None and future.result() is not None


def test_a_file_hashed_ahead_is_taken_from_the_thread_not_read_again(tmp_path: Path) -> None:
    old, new = b"a" * (3 * CHUNK + 5), b"b" * (3 * CHUNK + 5)
    path = tmp_path / "weights"
    path.write_bytes(old)
    with hashes_ahead([path], workers=1):
        _hashed_by_the_thread(path)
        _rewrite_keeping_identity(path, new)
        # the hash the thread read: proof the check did not read the file itself
        assert sha256_file(path) == hashlib.sha256(old).hexdigest()
        seen: list[int] = []
        assert sha256_scan(path, lambda chunk, _: seen.append(len(chunk))) == (
            hashlib.sha256(old).hexdigest()
        )
        assert sum(seen) == len(new)  # the scan still hands over every byte
    assert sha256_file(path) == hashlib.sha256(new).hexdigest()  # outside: read again


def test_a_file_changed_after_it_was_hashed_ahead_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "weights"
    path.write_bytes(b"a" * 1000)
    with hashes_ahead([path], workers=1):
        _hashed_by_the_thread(path)
        path.write_bytes(b"b" * 1000)
        os.utime(path, ns=(1, 1))  # another mtime: another identity
        assert sha256_file(path) == hashlib.sha256(b"b" * 1000).hexdigest()


def test_a_file_a_check_asks_for_first_is_read_by_the_check(tmp_path: Path) -> None:
    busy, second = tmp_path / "busy", tmp_path / "second"
    os.mkfifo(busy)  # the thread's open blocks until a writer comes: it is busy with it
    second.write_bytes(b"2" * 1000)
    with hashes_ahead([busy, second], workers=1):
        assert sha256_file(second) == hashlib.sha256(b"2" * 1000).hexdigest()
        assert hashing._AHEAD is not None
        assert hashing._AHEAD.take(hashing._identity(second, os.stat(second))) is None
        with open(busy, "wb"):
            pass  # lets the thread read to the end
    assert hashing._AHEAD is None  # the block ends its threads


def test_missing_files_are_left_to_the_checks(tmp_path: Path) -> None:
    with hashes_ahead([tmp_path / "gone"], workers=1), pytest.raises(FileNotFoundError):
        sha256_file(tmp_path / "gone")
