"""Source.fetch holds the artifact's lock: a second fetch waits, then fails naming the holder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wmtp_assets.files.lock import ArtifactLockedError
from wmtp_assets.sources import MirrorSource
from wmtp_assets_tests.sources.refs import ref

REPO = "openai/openai_humaneval"


def _holder(folder: Path, hold_s: float) -> subprocess.Popen[bytes]:
    script = textwrap.dedent(
        f"""
        import time
        from wmtp_assets.files.lock import artifact_lock
        with artifact_lock({str(folder)!r}):
            print("held", flush=True)
            time.sleep({hold_s})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
    return proc


@pytest.fixture
def source(tmp_path: Path) -> MirrorSource:
    repo_dir = tmp_path / "mirror" / "datasets" / REPO / "openai_humaneval"
    repo_dir.mkdir(parents=True)
    (repo_dir / "test-00000-of-00001.parquet").write_bytes(os.urandom(1000))
    return MirrorSource(tmp_path / "mirror")


def test_fetch_fails_naming_the_holder_when_the_lock_stays_taken(
    tmp_path: Path, source: MirrorSource
) -> None:
    artifact = tmp_path / "datasets_v2" / "humaneval"
    proc = _holder(artifact, 60)
    source.lock_timeout_s = 0.5
    try:
        with pytest.raises(ArtifactLockedError, match=f"pid {proc.pid}"):
            source.fetch(ref(REPO, "dataset", "main", ["*/test-*"]), artifact / "raw")
    finally:
        proc.kill()
        proc.wait()
    assert not (artifact / "raw").exists()
    assert source.fetch(ref(REPO, "dataset", "main", ["*/test-*"]), artifact / "raw").files


def test_fetch_waits_for_the_holder_to_finish(tmp_path: Path, source: MirrorSource) -> None:
    artifact = tmp_path / "datasets_v2" / "humaneval"
    proc = _holder(artifact, 1.5)
    started = time.monotonic()
    try:
        result = source.fetch(ref(REPO, "dataset", "main", ["*/test-*"]), artifact / "raw")
    finally:
        proc.wait()
    assert time.monotonic() - started >= 1.0
    assert proc.returncode == 0 and result.files
