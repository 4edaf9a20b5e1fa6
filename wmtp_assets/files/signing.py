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

Signing hashes no file twice in a run. The library lists the files and builds the payload; only
each file's SHA256 may come from elsewhere: the digest its writer computed in the same step
(``known``), or the one the last signing of the scope recorded in the signed-state record, each
only while the file keeps the identity (size, mtime_ns, inode) it had when hashed, else the file
is read. The payload is the one the library builds hashing from scratch (tested against it). A
file rewritten in place within one timestamp tick, or whose mtime was set back, keeps its
identity: its old digest is then signed, and the library's verifier refuses the signature
(stale); reuse can make a signature fail, never cover bytes nobody hashed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock
from model_signing import hashing, manifest, signing
from model_signing._hashing import hashing as digests
from model_signing._hashing import io
from pydantic import BaseModel, ValidationError

from wmtp_assets.files.atomic import TMP_MARK, atomic_write_text, tmp_path_for
from wmtp_assets.files.hashing import file_identity, sha256_file
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


Known = Mapping[Path, tuple[str, Sequence[int]]]
"""``{file: (SHA256, its identity when hashed)}``: digests computed earlier in this run."""


def _absolute(path: Path | str) -> Path:
    return Path(os.path.abspath(path))


def _reusable(known: Known, path: Path, identity: list[int]) -> str | None:
    """The SHA256 ``known`` holds for ``path`` while its identity is still ``identity``."""
    prior = known.get(path)
    return prior[0] if prior is not None and list(prior[1]) == identity else None


class _ReusingSha256(io.FileHasher):
    """The library's file hasher for one file (SHA256, as ``memory.SHA256`` names it), taking
    a known digest for an unchanged file; every digest it returns is noted in ``seen``."""

    def __init__(self, path: Path, known: Known, seen: dict[Path, tuple[str, list[int]]]):
        self._file = _absolute(path)
        self._known = known
        self._seen = seen

    @property
    def digest_name(self) -> str:
        return "sha256"

    @property
    def digest_size(self) -> int:
        return 32

    def compute(self) -> digests.Digest:
        identity = file_identity(self._file)  # before reading: a change while read shows later
        sha256 = _reusable(self._known, self._file, identity) or sha256_file(self._file)
        self._seen[self._file] = (sha256, identity)
        return digests.Digest(self.digest_name, bytes.fromhex(sha256))


class _SigningHashing(hashing.Config):
    """The library's file serialization (its file list, ignore rules and payload), with each
    file's SHA256 taken from ``known`` while the file is unchanged; ``files`` restricts it to
    a fixed list (a partition)."""

    def __init__(self, known: Known, files: Sequence[Path] | None = None) -> None:
        self.known = {_absolute(p): v for p, v in known.items()}
        self.seen: dict[Path, tuple[str, list[int]]] = {}
        self._files = None if files is None else list(files)
        super().__init__()  # type: ignore[no-untyped-call]

    def _build_file_hasher_factory(
        self,
        hashing_algorithm: str = "sha256",
        chunk_size: int = 1048576,
        max_workers: int | None = None,
    ) -> Callable[[Path], io.FileHasher]:
        if hashing_algorithm != "sha256":
            raise ValueError(f"signing hashes with SHA256, not {hashing_algorithm}")
        return lambda path: _ReusingSha256(path, self.known, self.seen)

    def hash(
        self,
        model_path: hashing.PathLike,
        *,
        files_to_hash: Iterable[hashing.PathLike] | None = None,
    ) -> manifest.Manifest:
        if files_to_hash is None and self._files is not None:
            files_to_hash = self._files
        return super().hash(model_path, files_to_hash=files_to_hash)


def _ignored_in_folder(scope: SignedScope) -> list[str]:
    """The signature, and every lock and temporary file that can appear in a model folder."""
    ignored = {scope.signature.relative_to(scope.folder).as_posix(), LOCK_NAME}
    for path in scope.folder.rglob("*"):
        if path.name == LOCK_NAME or (path.name.startswith(".") and TMP_MARK in path.name):
            ignored.add(path.relative_to(scope.folder).as_posix())
    for sub in ("raw", "safetensors", "configs", "tokenizer", "proof"):
        ignored.add(f"{sub}/{LOCK_NAME}")
    return sorted(ignored)


@dataclass(frozen=True)
class Signed:
    """A signature just written: its payload's SHA256 and each signed file's SHA256 with the
    identity the file had when hashed (relative to the scope's folder)."""

    payload_sha256: str
    files: dict[str, tuple[str, list[int]]]


def sign_scope(scope: SignedScope, private_key: Path, known: Known | None = None) -> Signed:
    """Sign ``scope`` with ``private_key`` (atomically replacing its signature), taking each
    file's SHA256 from ``known`` while the file keeps the identity recorded there."""
    listed = None if scope.files is None else [scope.folder / f for f in scope.files]
    config = _SigningHashing(known or {}, listed)
    if scope.files is None:
        config.set_ignored_paths(paths=_ignored_in_folder(scope))
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
    folder = _absolute(scope.folder)
    files = {p.relative_to(folder).as_posix(): v for p, v in config.seen.items()}
    return Signed(signed_payload(scope.signature).sha256, files)


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
    files: dict[str, tuple[str, list[int]]] = {}
    """``{path in the scope's folder: (SHA256, [size, mtime_ns, inode])}`` as signed: what the
    next signing of the scope reuses for a file whose identity is unchanged."""


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


def record_signed(path: Path, root: Path, scope: str, signed: Signed) -> StateEntry:
    """Record ``scope``'s newest signed payload for ``root`` (under a lock: partitions sign at
    once); the record is rewritten atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = StateEntry(
        payload_sha256=signed.payload_sha256,
        signed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        files=signed.files,
    )
    with FileLock(str(path) + ".lock"):
        state = read_signed_state(path) or SignedState()
        state.roots.setdefault(str(root.resolve()), {})[scope] = entry
        atomic_write_text(path, state.model_dump_json(indent=1) + "\n")
    return entry


def sign_and_record(
    scope: SignedScope, private_key: Path, state: Path, root: Path, known: Known | None = None
) -> Signed:
    """Sign ``scope`` reusing ``known`` (this step's writers) and the digests its last signing
    recorded for ``root`` (files unchanged since), then move the record to the new payload."""
    previous = read_signed_state(state)
    entry = previous.roots.get(str(root.resolve()), {}).get(scope.name) if previous else None
    reuse: dict[Path, tuple[str, Sequence[int]]] = {}
    if entry is not None:
        reuse = {scope.folder / rel: seen for rel, seen in entry.files.items()}
    signed = sign_scope(scope, private_key, {**reuse, **(known or {})})
    record_signed(state, root, scope.name, signed)
    return signed
