from __future__ import annotations

import json
from pathlib import Path

import pytest

from wmtp_assets.demo.signing_keys import make_demo_keys
from wmtp_assets.settings import (
    LLAMA2_TOKENIZER_SHA256,
    Settings,
    SettingsError,
    write_settings_file,
)

VARS = (
    "WMTP_STORAGE_ROOT",
    "WMTP_MIRROR",
    "WMTP_TOKENIZER_SHA256",
    "WMTP_MAX_TOKENS",
    "WMTP_DEVICE",
    "WMTP_LOCK_TIMEOUT",
    "WMTP_SIGNING_KEY",
    "WMTP_VERIFY_KEY",
    "WMTP_SIGNED_STATE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_follow_the_contract() -> None:
    settings = Settings.load()
    assert settings.storage_root == Path("storage")
    assert settings.mirror is None
    assert settings.tokenizer_sha256 == LLAMA2_TOKENIZER_SHA256
    assert LLAMA2_TOKENIZER_SHA256.startswith("9e556afd") and LLAMA2_TOKENIZER_SHA256.endswith(
        "d347"
    )
    assert (settings.max_tokens, settings.device) == (2048, "auto")
    assert settings.lock_timeout_s == 600.0  # a held lock is waited on, bounded
    assert {settings.origin(f) for f in ("storage_root", "mirror", "device")} == {"default"}


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in {
        "WMTP_STORAGE_ROOT": "/data",
        "WMTP_MIRROR": "/mirror",
        "WMTP_TOKENIZER_SHA256": "AB" * 32,
        "WMTP_MAX_TOKENS": "1024",
        "WMTP_DEVICE": "cuda",
        "WMTP_LOCK_TIMEOUT": "90",
    }.items():
        monkeypatch.setenv(var, value)
    settings = Settings.load()
    assert settings.storage_root == Path("/data")
    assert settings.mirror == Path("/mirror")
    assert settings.tokenizer_sha256 == "ab" * 32
    assert (settings.max_tokens, settings.device) == (1024, "cuda")
    assert settings.origin("max_tokens") == "env WMTP_MAX_TOKENS"
    assert settings.lock_timeout_s == 90.0


def test_empty_variables_take_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WMTP_MIRROR", "")
    monkeypatch.setenv("WMTP_MAX_TOKENS", "")
    settings = Settings.load()
    assert (settings.mirror, settings.max_tokens) == (None, 2048)


def test_the_storage_roots_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "mirror").mkdir()
    write_settings_file(root, mirror=str(root / "mirror"), tokenizer_sha256="cd" * 32)
    stored = json.loads((root / "wmtp_settings.json").read_text())
    assert stored["mirror"] == "mirror", "a mirror inside the root is stored relative to it"

    settings = Settings.load(storage_root=root)
    assert settings.mirror == root / "mirror"
    assert settings.tokenizer_sha256 == "cd" * 32
    assert settings.origin("mirror") == str(root / "wmtp_settings.json")
    assert settings.origin("storage_root") == "command line"

    monkeypatch.setenv("WMTP_TOKENIZER_SHA256", "ef" * 32)
    monkeypatch.setenv("WMTP_STORAGE_ROOT", str(root))
    settings = Settings.load()
    assert settings.tokenizer_sha256 == "ef" * 32
    assert settings.origin("tokenizer_sha256") == "env WMTP_TOKENIZER_SHA256"
    assert settings.mirror == root / "mirror"


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("WMTP_DEVICE", "tpu", "one of auto, cuda, mps, cpu"),
        ("WMTP_MAX_TOKENS", "0", "a whole number > 0"),
        ("WMTP_MAX_TOKENS", "lots", "a whole number > 0"),
        ("WMTP_TOKENIZER_SHA256", "xyz", "64 hex digits"),
        ("WMTP_LOCK_TIMEOUT", "0", "a number of seconds > 0"),
        ("WMTP_LOCK_TIMEOUT", "forever", "a number of seconds > 0"),
    ],
)
def test_bad_values_name_the_variable_in_one_line(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as caught:
        Settings.load()
    message = str(caught.value)
    assert message.startswith(f"{var}: ") and expected in message and repr(value) in message
    assert "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_bad_settings_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "wmtp_settings.json").write_text('{"max_tokens": "many"')
    with pytest.raises(SettingsError, match=r"wmtp_settings\.json: expected a JSON object"):
        Settings.load(storage_root=tmp_path)
    (tmp_path / "wmtp_settings.json").write_text('{"max_tokens": 0}')
    with pytest.raises(SettingsError, match=r"wmtp_settings\.json: max_tokens must be"):
        Settings.load(storage_root=tmp_path)


@pytest.mark.parametrize("kind", ["directory", "dangling symlink"])
def test_a_settings_file_that_is_no_file_is_named_in_one_line(tmp_path: Path, kind: str) -> None:
    """Issue 18: a folder or a link to nothing at the settings file's place was silently read
    as 'no settings', so the root ran with defaults its operator had not chosen."""
    path = tmp_path / "wmtp_settings.json"
    if kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "gone.json")
    with pytest.raises(SettingsError) as caught:
        Settings.load(storage_root=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert ("dangling symlink" if kind != "directory" else "not a file") in message


@pytest.mark.parametrize("field", ["signing_key", "verify_key", "signed_state"])
def test_keys_cannot_come_from_the_roots_settings_file(tmp_path: Path, field: str) -> None:
    """Whoever writes the root could otherwise point verify at their own key."""
    (tmp_path / "wmtp_settings.json").write_text(json.dumps({field: "/elsewhere/k.pem"}))
    with pytest.raises(SettingsError) as caught:
        Settings.load(storage_root=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'wmtp_settings.json'}: {field} cannot be set")
    assert f"WMTP_{field.upper()} in the environment" in message and "\n" not in message


@pytest.mark.parametrize("var", ["WMTP_SIGNING_KEY", "WMTP_VERIFY_KEY", "WMTP_SIGNED_STATE"])
def test_a_key_inside_the_root_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, var: str
) -> None:
    root = tmp_path / "storage"
    monkeypatch.setenv(var, str(root / "keys" / "k.pem"))
    with pytest.raises(SettingsError, match=f"^{var}: .* is inside the storage root {root};"):
        Settings.load(storage_root=root)
    monkeypatch.setenv(var, str(tmp_path / "keys" / "k.pem"))
    assert (
        Settings.load(storage_root=root).origin(var.removeprefix("WMTP_").lower()) == f"env {var}"
    )


def test_the_demo_keys_of_a_root_are_the_default_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    root = tmp_path / "storage"
    assert Settings.load(storage_root=root).verify_key is None
    keys = make_demo_keys(root, tmp_path / "config")
    settings = Settings.load(storage_root=root)
    assert (settings.signing_key, settings.verify_key) == (keys.signing_key, keys.verify_key)
    assert settings.signed_state_for(keys.verify_key) == keys.signed_state
    assert settings.origin("verify_key").startswith("the demo's keys for this root")
    assert Settings.load(storage_root=tmp_path / "other").verify_key is None
    monkeypatch.setenv("WMTP_VERIFY_KEY", str(tmp_path / "mine.pem"))
    assert Settings.load(storage_root=root).verify_key == tmp_path / "mine.pem"
