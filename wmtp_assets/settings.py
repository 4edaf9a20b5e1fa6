"""The public settings contract (ARCHITECTURE §2) as one validated pydantic model.

A setting comes from, in order of precedence: the environment (``WMTP_*``, read by
pydantic-settings), the storage root's settings file (``<root>/wmtp_settings.json``, written by
``wmtp-assets demo`` or an operator so every entry point sees the same choices), or the
contract's default. ``Settings.origins`` records which one each value came from, so the CLI and
the UI can say it. Core code receives a ``Settings`` object and never reads the environment.

The signing settings (``WMTP_SIGNING_KEY``, ``WMTP_VERIFY_KEY``, ``WMTP_SIGNED_STATE``) anchor
trust outside the storage root, so they are never read from its settings file and never point
inside it; unset, they default to the demo's keys for this root when ``wmtp-assets demo`` made
some (``wmtp_assets.demo.signing_keys``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wmtp_assets.files.atomic import atomic_write_text

LLAMA2_TOKENIZER_SHA256 = "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347"
SETTINGS_FILE_NAME = "wmtp_settings.json"
DEFAULT_STORAGE_ROOT = Path("storage")

Device = Literal["auto", "cuda", "mps", "cpu"]

ENV_VARS = {
    "storage_root": "WMTP_STORAGE_ROOT",
    "mirror": "WMTP_MIRROR",
    "tokenizer_sha256": "WMTP_TOKENIZER_SHA256",
    "max_tokens": "WMTP_MAX_TOKENS",
    "device": "WMTP_DEVICE",
    "lock_timeout_s": "WMTP_LOCK_TIMEOUT",
    "signing_key": "WMTP_SIGNING_KEY",
    "verify_key": "WMTP_VERIFY_KEY",
    "signed_state": "WMTP_SIGNED_STATE",
}
FILE_FIELDS = ("mirror", "tokenizer_sha256", "max_tokens", "device", "lock_timeout_s")
"""What a settings file may hold; the storage root is where the file is, so it is not in it."""
TRUST_FIELDS = ("signing_key", "verify_key", "signed_state")
"""Settings only the environment (or run config) may set, and never to a path inside the root:
whoever writes the root could otherwise name their own key."""


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable or file and what was expected."""


class Settings(BaseModel):
    """Where artifacts live, where upstream files come from, and the rules they must meet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    storage_root: Path = Field(default=DEFAULT_STORAGE_ROOT, description="WMTP_STORAGE_ROOT")
    mirror: Path | None = Field(default=None, description="WMTP_MIRROR; None reads the Hub")
    tokenizer_sha256: str = Field(
        default=LLAMA2_TOKENIZER_SHA256, description="WMTP_TOKENIZER_SHA256"
    )
    max_tokens: int = Field(default=2048, gt=0, description="WMTP_MAX_TOKENS")
    device: Device = Field(default="auto", description="WMTP_DEVICE")
    lock_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="WMTP_LOCK_TIMEOUT: seconds a run waits for a held artifact or download slot",
    )
    signing_key: Path | None = Field(
        default=None, description="WMTP_SIGNING_KEY: PEM EC P-256 private key; None signs nothing"
    )
    verify_key: Path | None = Field(
        default=None, description="WMTP_VERIFY_KEY: PEM public key; None checks no signature"
    )
    signed_state: Path | None = Field(
        default=None, description="WMTP_SIGNED_STATE: the signed-state record; None: beside the key"
    )
    origins: dict[str, str] = Field(
        default_factory=dict,
        exclude=True,
        description="where each value came from: 'env WMTP_X', a settings file, or 'default'",
    )

    @field_validator("tokenizer_sha256")
    @classmethod
    def _hex_sha256(cls, value: str) -> str:
        value = value.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError(f"expected 64 hex digits, got {value!r}")
        return value

    @property
    def settings_file(self) -> Path:
        return self.storage_root / SETTINGS_FILE_NAME

    def origin(self, field: str) -> str:
        return self.origins.get(field, "default")

    def signed_state_for(self, key: Path) -> Path:
        """The signed-state record that goes with ``key``: ``WMTP_SIGNED_STATE``, else beside it."""
        from wmtp_assets.files.signing import STATE_FILE_NAME

        return self.signed_state or key.parent / STATE_FILE_NAME

    @classmethod
    def load(cls, storage_root: Path | None = None) -> Settings:
        """Resolve every setting: environment, then the root's settings file, then defaults.

        ``storage_root`` (e.g. a ``--storage-root`` flag) wins over ``WMTP_STORAGE_ROOT``.
        Raises ``SettingsError`` naming the variable or file of the first bad value.
        """
        env = _Environment().model_dump(exclude_none=True)
        if "lock_timeout" in env:
            env["lock_timeout_s"] = env.pop("lock_timeout")
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        if storage_root is not None:
            values["storage_root"], origins["storage_root"] = storage_root, "command line"
        elif "storage_root" in env:
            values["storage_root"] = env["storage_root"]
            origins["storage_root"] = f"env {ENV_VARS['storage_root']}"
        root = Path(values.get("storage_root", DEFAULT_STORAGE_ROOT))
        file = root / SETTINGS_FILE_NAME
        for field, value in read_settings_file(file).items():
            values[field], origins[field] = value, str(file)
        for field in FILE_FIELDS:
            if field in env:
                values[field], origins[field] = env[field], f"env {ENV_VARS[field]}"
        values_trusted, origins_trusted = _trust_settings(env, root)
        values |= values_trusted
        origins |= origins_trusted
        try:
            return cls.model_validate({**values, "origins": origins})
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0])
            where = origins.get(field, "default").removeprefix("env ")
            raise SettingsError(
                f"{where}: {field} must be {_expected(field)}; got {values.get(field)!r} "
                f"({error['msg']})"
            ) from None


def config_home() -> Path:
    """``$XDG_CONFIG_HOME``, else ``~/.config``: where the demo keeps its keys."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def _trust_settings(env: dict[str, str], root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The signing settings from the environment, else the demo's keys for ``root``; a path
    inside the root is a ``SettingsError``."""
    from wmtp_assets.demo.signing_keys import demo_keys

    demo = demo_keys(root, config_home())
    values: dict[str, str] = {}
    origins: dict[str, str] = {}
    for field in TRUST_FIELDS:
        if field in env:
            values[field], origins[field] = env[field], f"env {ENV_VARS[field]}"
        elif demo is not None:
            values[field] = str(getattr(demo, field))
            origins[field] = f"the demo's keys for this root ({demo.folder})"
        else:
            continue
        if Path(values[field]).resolve().is_relative_to(root.resolve()):
            raise SettingsError(
                f"{origins[field].removeprefix('env ')}: {field} {values[field]} is inside the "
                f"storage root {root}; keep keys and the signed-state record outside it (whoever "
                "writes the root could replace them)"
            )
    return values, origins


def _expected(field: str) -> str:
    return {
        "max_tokens": "a whole number > 0",
        "device": "one of auto, cuda, mps, cpu",
        "tokenizer_sha256": "64 hex digits",
        "storage_root": "a path",
        "mirror": "a path",
        "lock_timeout_s": "a number of seconds > 0",
        "signing_key": "a path",
        "verify_key": "a path",
        "signed_state": "a path",
    }[field]


class _Environment(BaseSettings):
    """The ``WMTP_*`` variables as raw strings; unset or empty ones are absent."""

    model_config = SettingsConfigDict(env_prefix="WMTP_", env_ignore_empty=True, extra="ignore")

    storage_root: str | None = None
    mirror: str | None = None
    tokenizer_sha256: str | None = None
    max_tokens: str | None = None
    device: str | None = None
    lock_timeout: str | None = None
    signing_key: str | None = None
    verify_key: str | None = None
    signed_state: str | None = None


class _SettingsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mirror: str | None = None
    tokenizer_sha256: str | None = None
    max_tokens: int | None = None
    device: str | None = None
    lock_timeout_s: float | None = None


def read_settings_file(path: Path) -> dict[str, Any]:
    """The settings a storage root carries (relative mirror paths resolve against the root);
    an absent file is no settings, a bad one (a folder, a dangling link, not JSON) a
    ``SettingsError`` naming it: something stands at the file's place, so it was meant."""
    if not os.path.lexists(path):
        return {}
    if not path.is_file():
        what = "a dangling symlink" if path.is_symlink() and not path.exists() else "not a file"
        raise SettingsError(f"{path}: {what}; expected a JSON settings file or nothing there")
    try:
        parsed = _SettingsFile.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else ""
        if field in TRUST_FIELDS:
            raise SettingsError(
                f"{path}: {field} cannot be set in the storage root's settings file (whoever "
                f"writes the root could name their own key); set {ENV_VARS[field]} in the "
                "environment"
            ) from None
        raise SettingsError(
            f"{path}: expected a JSON object with some of {', '.join(FILE_FIELDS)} "
            f"({exc.errors()[0]['msg']})"
        ) from None
    except OSError as exc:
        raise SettingsError(
            f"{path}: expected a JSON object with some of {', '.join(FILE_FIELDS)} ({exc})"
        ) from None
    values = parsed.model_dump(exclude_none=True)
    if "mirror" in values and not Path(values["mirror"]).is_absolute():
        values["mirror"] = str(path.parent / values["mirror"])
    return values


def write_settings_file(root: Path, **values: str | int) -> Path:
    """Record settings for a storage root (atomically); a mirror inside the root is stored
    relative to it so the root can move."""
    record = dict(values)
    mirror = record.get("mirror")
    if isinstance(mirror, str) and Path(mirror).resolve().is_relative_to(root.resolve()):
        record["mirror"] = str(Path(mirror).resolve().relative_to(root.resolve()))
    _SettingsFile.model_validate(record)
    return atomic_write_text(
        root / SETTINGS_FILE_NAME, json.dumps(record, indent=2, sort_keys=True) + "\n"
    )
