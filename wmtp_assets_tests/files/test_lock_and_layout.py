from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wmtp_assets.files.layout import Layout, UnsafePathError, safe_join
from wmtp_assets.files.lock import ArtifactLockedError, artifact_lock


def test_second_holder_fails_with_a_clear_message_and_lock_dies_with_its_holder(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import time
        from wmtp_assets.files.lock import artifact_lock
        with artifact_lock({str(tmp_path)!r}):
            print("held", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
    try:
        with pytest.raises(ArtifactLockedError, match=f"pid {proc.pid}"), artifact_lock(tmp_path):
            pass
    finally:
        proc.kill()
        proc.wait()
    with artifact_lock(tmp_path, timeout_s=5):
        pass


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "", "a\x00b"])
def test_safe_join_refuses_escapes(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, bad)


def test_safe_join_accepts_nested_paths(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "7B_1T_4/params.json") == tmp_path / "7B_1T_4" / "params.json"


def test_layout_uses_the_contract_folder_names(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert layout.model("meta_llama_mtp").weights == (
        tmp_path / "models_v2/meta-llama-mtp/safetensors/model.safetensors"
    )
    assert layout.model("ref_sheared_llama_2_7b").root.name == "ref-sheared-llama-2.7b"
    ds = layout.dataset("codecontests")
    assert ds.jsonl("train") == tmp_path / "datasets_v2/codecontests/processed/train.jsonl"
    assert ds.problem_index("valid").name == "valid_metadata.json"
    assert ds.small_jsonl("test") == (
        tmp_path / "datasets_local_small/codecontests_small/test_small.jsonl"
    )
    with pytest.raises(KeyError):
        layout.model("nope")


def test_a_held_lock_names_its_holder_announces_the_wait_and_gives_up_bounded(
    tmp_path: Path,
) -> None:
    """Issue 18 (7): who holds it (pid, host, since, command), a visible wait, a bounded one."""
    script = textwrap.dedent(
        f"""
        import time
        from wmtp_assets.files.lock import artifact_lock
        with artifact_lock({str(tmp_path)!r}):
            print("held", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script, "holder-marker"], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
    said: list[str] = []
    try:
        started = time.monotonic()
        with (
            pytest.raises(ArtifactLockedError) as info,
            artifact_lock(tmp_path, timeout_s=1.0, notify=said.append),
        ):
            pass
        waited = time.monotonic() - started
    finally:
        proc.kill()
        proc.wait()
    holder = rf"pid {proc.pid} on {re.escape(socket.gethostname())} since 20\d\d-.*holder-marker"
    assert len(said) == 1 and re.search(holder + r".*waiting up to 1s", said[0]), said
    assert re.search(holder + r".*gave up after waiting 1s \(WMTP_LOCK_TIMEOUT\)", str(info.value))
    assert 1.0 <= waited < 5.0
    started = time.monotonic()
    with artifact_lock(tmp_path, timeout_s=600, notify=said.append):  # SIGKILL freed it
        pass
    assert time.monotonic() - started < 1.0 and len(said) == 1, "no wait after the kill"
