from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wmtp_assets.files.atomic import (
    TMP_MARK,
    atomic_copy,
    atomic_open,
    atomic_write_json,
    sweep_stale_tmp,
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
