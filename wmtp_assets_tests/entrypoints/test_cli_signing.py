"""The newcomer's flow with signatures: ``wmtp-assets demo`` signs with a key pair it keeps
outside the root, a consumer verifies with the ``model_signing`` library alone, and
``wmtp-assets verify`` checks the signatures with no setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from model_signing import verifying

from wmtp_assets.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from wmtp_assets.demo.signing_keys import demo_keys
from wmtp_assets.files.layout import Layout
from wmtp_assets.settings import Settings
from wmtp_assets.validate.signatures import SELF_CONSISTENT_ONLY
from wmtp_assets_tests.validate.test_signatures import stored_scopes


def test_the_demo_signs_everything_and_the_library_alone_verifies_it(
    demo_storage: Settings, config_home: Path
) -> None:
    root = demo_storage.storage_root
    keys = demo_keys(root, config_home)
    assert keys is not None and not keys.folder.resolve().is_relative_to(root.resolve())
    assert Settings.load(storage_root=root).verify_key == keys.verify_key
    layout = Layout(root)
    models = [layout.model(m).root for m in ("micro_mtp", "micro_ref", "meta_llama_mtp")]
    for folder in [*models, layout.model("ref_sheared_llama_2_7b").root]:
        verifying.Config().use_elliptic_key_verifier(public_key=keys.verify_key).verify(
            folder, folder / "model.sig"
        )
    partitions = [s for s in stored_scopes(layout) if s.files is not None]
    assert len(partitions) == 14
    for scope in partitions:
        config = verifying.Config().use_elliptic_key_verifier(public_key=keys.verify_key)
        config.set_ignore_unsigned_files(True).verify(scope.folder, scope.signature)


def test_verify_after_the_demo_checks_the_demo_signatures_with_no_setting(
    demo_storage: Settings, config_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = demo_storage.storage_root
    keys = demo_keys(root, config_home)
    assert keys is not None
    assert main(["--storage-root", str(root), "verify", "--model", "micro_mtp"]) == EXIT_OK
    assert f"signatures: 1 checked with {keys.verify_key}, 0 failed" in capsys.readouterr().out


def test_verify_fails_naming_the_folder_of_a_flipped_weight_byte(
    copied_demo_storage: Settings,
    config_home: Path,
    demo_storage: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = demo_keys(demo_storage.storage_root, config_home)
    assert keys is not None
    monkeypatch.setenv("WMTP_VERIFY_KEY", str(keys.verify_key))
    root = copied_demo_storage.storage_root
    weights = Layout(root).model("micro_mtp").weights
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert main(["--storage-root", str(root), "verify", "--model", "micro_mtp"]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "models_v2/micro-mtp: stale signature, files changed after signing" in out
    assert "signatures: 1 checked" in out and "1 failed" in out


def test_without_a_key_verify_says_the_proof_is_self_consistent_only(
    copied_demo_storage: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copied_demo_storage.storage_root
    assert Settings.load(storage_root=root).verify_key is None  # a copy has no demo keys
    assert main(["--storage-root", str(root), "verify", "--model", "micro_mtp"]) == EXIT_OK
    assert SELF_CONSISTENT_ONLY in capsys.readouterr().out.splitlines()


def test_a_verify_key_inside_the_root_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WMTP_VERIFY_KEY", str(tmp_path / "verify_key.pem"))
    assert main(["--storage-root", str(tmp_path), "verify"]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("wmtp-assets: WMTP_VERIFY_KEY: verify_key ")
    assert "is inside the storage root" in err[0]
