"""Signatures in the OpenSSF Model Signing format (the ``model_signing`` library) and the
signed-state record that catches a rollback.

A signature is a Sigstore bundle whose DSSE payload is an in-toto statement listing every
signed file with its SHA256. The key is a PEM EC P-256 private key kept outside the storage
root, so whoever can write the root can delete or replace a signature but not make one: a
consumer checks a folder with the library alone (``model_signing.verifying.Config()
.use_elliptic_key_verifier(public_key=...).verify(folder, signature)``).

A valid signature only says "these bytes were signed once"; an older copy of the whole root
carries older valid signatures. The signed-state record, a JSON file outside the root (beside
the key unless ``WMTP_SIGNED_STATE`` names one), keeps the newest signed payload's SHA256 per
signed scope and root, so verify can say when the root is behind it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock
from model_signing import hashing, manifest, signing
from pydantic import BaseModel, ValidationError

from wmtp_assets.files.atomic import TMP_MARK, atomic_write_text, tmp_path_for
from wmtp_assets.files.lock import LOCK_NAME

STATE_FILE_NAME = "wmtp-signed-state.json"
"""The signed-state record's name beside the key when ``WMTP_SIGNED_STATE`` is unset."""


class SigningError(ValueError):
    """A key or signature cannot be used; the message names the file and what was expected."""


@dataclass(frozen=True)
class SignedScope:
    """What one signature covers.

    ``folder`` is the path the library verifies; ``files`` (relative to it) is the exact set a
    partition's signature covers, ``None`` for a model folder, whose signature covers every file
    in it except the signature itself and lock files (whose bytes are a holder's pid).
    """

    name: str
    folder: Path
    signature: Path
    files: tuple[str, ...] | None = None


def require_outside(path: Path, root: Path, variable: str) -> None:
    """Refuse a key or record that whoever writes ``root`` could replace."""
    if path.resolve().is_relative_to(root.resolve()):
        raise SigningError(
            f"{variable}={path}: is inside the storage root {root}; keep keys and the signed-state "
            "record outside it (whoever writes the root could replace them)"
        )


class _FileSetHashing(hashing.Config):
    """The library's file serialization restricted to a fixed list of files (a partition)."""

    def __init__(self, files: Sequence[Path]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._files = list(files)

    def hash(
        self,
        model_path: hashing.PathLike,
        *,
        files_to_hash: Iterable[hashing.PathLike] | None = None,
    ) -> manifest.Manifest:
        return super().hash(
            model_path, files_to_hash=self._files if files_to_hash is None else files_to_hash
        )


def _ignored_in_folder(scope: SignedScope) -> list[str]:
    """The signature, and every lock and temporary file that can appear in a model folder."""
    ignored = {scope.signature.relative_to(scope.folder).as_posix(), LOCK_NAME}
    for path in scope.folder.rglob("*"):
        if path.name == LOCK_NAME or (path.name.startswith(".") and TMP_MARK in path.name):
            ignored.add(path.relative_to(scope.folder).as_posix())
    for sub in ("raw", "safetensors", "configs", "tokenizer", "proof"):
        ignored.add(f"{sub}/{LOCK_NAME}")
    return sorted(ignored)


def sign_scope(scope: SignedScope, private_key: Path) -> str:
    """Sign ``scope`` with ``private_key`` (atomically replacing its signature); return the
    signed payload's SHA256 (what the signed-state record keeps)."""
    if scope.files is None:
        config = hashing.Config()  # type: ignore[no-untyped-call]
        config.set_ignored_paths(paths=_ignored_in_folder(scope))
    else:
        config = _FileSetHashing([scope.folder / f for f in scope.files])
    try:
        signer = signing.Config()  # type: ignore[no-untyped-call]
        signer.use_elliptic_key_signer(private_key=private_key)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningError(
            f"{private_key}: expected a PEM EC P-256 private key without password ({exc})"
        ) from None
    scope.signature.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(scope.signature)
    try:
        signer.set_hashing_config(config).sign(scope.folder, tmp)
        tmp.replace(scope.signature)
    finally:
        tmp.unlink(missing_ok=True)
    return signed_payload(scope.signature).sha256


@dataclass(frozen=True)
class SignedPayload:
    """What a signature file says it covers (read without checking it: verify does that)."""

    sha256: str
    subject: str
    files: dict[str, str]
    """``{path relative to the signed folder: its SHA256 when signed}``."""


def signed_payload(signature: Path) -> SignedPayload:
    """The in-toto statement inside a signature bundle; ``SigningError`` when it has none."""
    try:
        bundle = json.loads(signature.read_bytes())
        raw = base64.b64decode(bundle["dsseEnvelope"]["payload"])
        statement = json.loads(raw)
        subject = str(statement["subject"][0]["name"])
        files = {str(r["name"]): str(r["digest"]) for r in statement["predicate"]["resources"]}
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise SigningError(f"{signature}: not an OpenSSF Model Signing bundle ({exc})") from None
    return SignedPayload(hashlib.sha256(raw).hexdigest(), subject, files)


class StateEntry(BaseModel):
    payload_sha256: str
    signed_at: str


class SignedState(BaseModel):
    """``{resolved storage root: {scope name: newest signed payload}}``."""

    roots: dict[str, dict[str, StateEntry]] = {}


def read_signed_state(path: Path) -> SignedState | None:
    """The record at ``path``; None when there is none. A bad one is a ``SigningError``."""
    if not path.is_file():
        return None
    try:
        return SignedState.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise SigningError(f"{path}: expected a signed-state record ({exc})") from None


def record_signed(path: Path, root: Path, scope: str, payload_sha256: str) -> StateEntry:
    """Record ``scope``'s newest signed payload for ``root`` (under a lock: partitions sign at
    once); the record is rewritten atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = StateEntry(
        payload_sha256=payload_sha256, signed_at=datetime.now(UTC).isoformat(timespec="seconds")
    )
    with FileLock(str(path) + ".lock"):
        state = read_signed_state(path) or SignedState()
        state.roots.setdefault(str(root.resolve()), {})[scope] = entry
        atomic_write_text(path, state.model_dump_json(indent=1) + "\n")
    return entry
