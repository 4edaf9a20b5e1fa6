from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wmtp_assets.files import atomic
from wmtp_assets.files.atomic import (
    TMP_MARK,
    atomic_copy,
    atomic_open,
    atomic_write_json,
    sweep_stale_tmp,
    sweep_tmp_of,
)


def test_failure_inside_the_block_keeps_the_previous_file(tmp_path: Path) -> None:
    dest = tmp_path / "a.json"
    atomic_write_json(dest, {"v": 1})
    with pytest.raises(RuntimeError), atomic_open(dest) as fh:
        fh.write(b"partial")
        raise RuntimeError("boom")
    assert dest.read_text() == '{\n  "v": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_sigkill_mid_write_leaves_only_a_marked_temp_file(tmp_path: Path) -> None:
    dest = tmp_path / "big.bin"
    dest.write_bytes(b"old")
    script = textwrap.dedent(
        f"""
        import sys, time
        from wmtp_assets.files.atomic import atomic_open
        with atomic_open({str(dest)!r}) as fh:
            fh.write(b"x" * 1000)
            fh.flush()
            print("writing", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert dest.read_bytes() == b"old"
    leftovers = [p for p in tmp_path.iterdir() if p != dest]
    assert leftovers and all(p.name.startswith(".") and TMP_MARK in p.name for p in leftovers)
    assert sweep_stale_tmp(tmp_path) == leftovers
    assert list(tmp_path.iterdir()) == [dest]


def test_atomic_copy_copies_bytes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(100_000))
    assert atomic_copy(src, tmp_path / "sub" / "dst", chunk_size=4096).read_bytes() == (
        src.read_bytes()
    )


class _CloseFailsWriter(io.BufferedWriter):
    """A file whose ``close`` reports ENOSPC after closing, as NFS or a full quota can."""

    def close(self) -> None:
        super().close()
        raise OSError(errno.ENOSPC, "No space left on device")


def test_close_failure_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "a.json"
    dest.write_bytes(b"old")

    def failing_open(path: Path, mode: str) -> io.BufferedWriter:
        return _CloseFailsWriter(io.FileIO(path, mode))

    monkeypatch.setattr(atomic, "open", failing_open, raising=False)
    with pytest.raises(OSError, match="No space left"), atomic_open(dest) as fh:
        fh.write(b"new")
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_fsync_failure_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "a.json"

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_json(dest, {"v": 1})
    assert list(tmp_path.iterdir()) == []


def test_sweep_tmp_of_removes_only_that_destinations_leftovers(tmp_path: Path) -> None:
    dest = tmp_path / "raw"
    mine_file, mine_dir = tmp_path / f".raw{TMP_MARK}1-aa", tmp_path / f".raw{TMP_MARK}2-bb"
    other = tmp_path / f".metadata.json{TMP_MARK}3-cc"
    mine_file.write_bytes(b"x")
    (mine_dir / "sub").mkdir(parents=True)
    other.write_bytes(b"y")
    sweep_tmp_of(dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name]
