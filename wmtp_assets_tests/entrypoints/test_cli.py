"""The ``wmtp-assets`` command as a user types it: quick help, exit codes, where it writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wmtp_assets.cli import EXIT_FAILED, EXIT_NOTHING_STORED, EXIT_OK, EXIT_USAGE, main
from wmtp_assets.files.layout import Layout
from wmtp_assets.settings import Settings


def test_help_imports_neither_dagster_nor_torch_whatever_the_environment_holds() -> None:
    code = (
        "import sys\n"
        "from wmtp_assets.cli import main\n"
        "try:\n    main(['--help'])\n"
        "except SystemExit as e:\n    assert e.code == 0\n"
        "heavy = sorted(m for m in ('dagster', 'torch', 'transformers') if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
    )
    env = {"WMTP_MAX_TOKENS": "not-a-number", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert "WMTP_TOKENIZER_SHA256" in done.stdout and "exit codes" in done.stdout
    assert "heavy: []" in done.stdout


def test_a_bad_setting_is_one_line_with_a_hint_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WMTP_DEVICE", "tpu")
    assert main(["--storage-root", str(tmp_path), "verify"]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("wmtp-assets: WMTP_DEVICE: device must be one of auto, cuda, mps")
    assert err[1].startswith("hint: ")


def test_verify_on_an_empty_root_says_nothing_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--storage-root", str(tmp_path), "verify"]) == EXIT_NOTHING_STORED
    assert f"nothing stored under {tmp_path}" in capsys.readouterr().err


def test_verify_and_report_after_the_demo_pass_and_write_under_the_root(
    copied_demo_storage: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copied_demo_storage.storage_root
    assert main(["--storage-root", str(root), "verify"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "checks passed, 0 failed" in out
    assert f"[{root / 'wmtp_settings.json'}]" in out, "verify says where the mirror came from"
    assert "DEBUG" not in out

    assert main(["--storage-root", str(root), "report"]) == EXIT_OK
    assert (root / "asset_inventory.md").is_file()
    elsewhere = tmp_path / "elsewhere.md"
    assert main(["--storage-root", str(root), "report", "--output", str(elsewhere)]) == EXIT_OK
    assert "# Asset inventory" in elsewhere.read_text()


def test_a_deleted_metadata_file_fails_verify_instead_of_being_skipped(
    copied_demo_storage: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copied_demo_storage.storage_root
    Layout(root).model("micro_mtp").metadata.unlink()
    stats = Layout(root).dataset("mbpp").stats_file("test")
    stats.unlink()
    assert main(["--storage-root", str(root), "verify"]) == EXIT_FAILED
    failed = [line for line in capsys.readouterr().out.splitlines() if "  FAIL  " in line]
    assert any(line.startswith("models/micro_mtp ") for line in failed)
    assert any(line.startswith("datasets/stats") and "mbpp.test" in line for line in failed)
