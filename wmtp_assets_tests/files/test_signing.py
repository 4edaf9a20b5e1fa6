"""Signing a model folder or a file set, checked with the ``model_signing`` library's own
verifier (what a consumer runs, with nothing of ours), and the signed-state record."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from model_signing import hashing, manifest, signing, verifying

from wmtp_assets.files import signing as ours
from wmtp_assets.files.hashing import file_identity
from wmtp_assets.files.signing import (
    Signed,
    SignedScope,
    SigningError,
    read_signed_state,
    record_signed,
    require_outside,
    sign_and_record,
    sign_scope,
    signed_payload,
)


def write_key_pair(folder: Path, curve: ec.EllipticCurve | None = None) -> tuple[Path, Path]:
    """A PEM EC private key (P-256 unless ``curve``) and its public key under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(curve or ec.SECP256R1())
    key, pub = folder / "signing_key.pem", folder / "verify_key.pem"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, pub


def library_verify(folder: Path, signature: Path, pub: Path, file_set: bool = False) -> None:
    config = verifying.Config().use_elliptic_key_verifier(public_key=pub)
    config.set_ignore_unsigned_files(file_set).verify(folder, signature)


@pytest.fixture
def model(tmp_path: Path) -> SignedScope:
    folder = tmp_path / "root" / "models_v2" / "micro-mtp"
    (folder / "safetensors").mkdir(parents=True)
    (folder / "raw").mkdir()
    (folder / "safetensors" / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (folder / "raw" / "SOURCE.json").write_text("{}")
    (folder / "metadata.json").write_text('{"files": {}}')
    (folder / ".lock").write_text("1234")
    return SignedScope("models_v2/micro-mtp", folder, folder / "model.sig")


def test_a_signed_model_folder_is_accepted_by_the_librarys_verifier(
    model: SignedScope, tmp_path: Path
) -> None:
    key, pub = write_key_pair(tmp_path / "keys")
    sign_scope(model, key)
    library_verify(model.folder, model.signature, pub)
    payload = signed_payload(model.signature)
    assert payload.subject == "micro-mtp"
    assert set(payload.files) == {
        "safetensors/model.safetensors",
        "raw/SOURCE.json",
        "metadata.json",
    }
    weights = model.folder / "safetensors" / "model.safetensors"
    assert (
        payload.files["safetensors/model.safetensors"] == sha256(weights.read_bytes()).hexdigest()
    )
    (model.folder / ".lock").write_text("5678")  # a lock's holder changes: still valid
    (model.folder / "tokenizer").mkdir()
    (model.folder / "tokenizer" / ".lock").write_text("1")
    library_verify(model.folder, model.signature, pub)


def test_one_flipped_byte_an_added_file_or_another_key_fail_the_librarys_verifier(
    model: SignedScope, tmp_path: Path
) -> None:
    key, pub = write_key_pair(tmp_path / "keys")
    other_key, _ = write_key_pair(tmp_path / "other")
    sign_scope(model, key)
    weights = model.folder / "safetensors" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[100] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"Hash mismatch for .{0,4}safetensors/model\.safetensors"):
        library_verify(model.folder, model.signature, pub)
    data[100] ^= 1
    weights.write_bytes(bytes(data))
    library_verify(model.folder, model.signature, pub)
    (model.folder / "modeling_evil.py").write_text("import os")
    with pytest.raises(ValueError, match=r"Extra files .*modeling_evil\.py"):
        library_verify(model.folder, model.signature, pub)
    (model.folder / "modeling_evil.py").unlink()
    sign_scope(model, other_key)
    with pytest.raises(ValueError, match="Key mismatch"):
        library_verify(model.folder, model.signature, pub)


def test_a_file_set_signature_covers_exactly_its_files(tmp_path: Path) -> None:
    key, pub = write_key_pair(tmp_path / "keys")
    folder = tmp_path / "root" / "datasets_v2" / "mbpp"
    (folder / "processed").mkdir(parents=True)
    (folder / "processed" / "test.jsonl").write_text('{"a": 1}\n')
    (folder / "processed" / "train.jsonl").write_text('{"a": 2}\n')
    scope = SignedScope(
        "datasets_v2/mbpp/test",
        folder,
        folder / "signatures" / "test.sig",
        ("processed/test.jsonl",),
    )
    sign_scope(scope, key)
    assert set(signed_payload(scope.signature).files) == {"processed/test.jsonl"}
    (folder / "processed" / "train.jsonl").write_text("another split rewritten\n")
    library_verify(folder, scope.signature, pub, file_set=True)
    (folder / "processed" / "test.jsonl").write_text('{"a": 3}\n')
    with pytest.raises(ValueError, match=r"Hash mismatch for .{0,4}processed/test\.jsonl"):
        library_verify(folder, scope.signature, pub, file_set=True)


def test_a_key_that_is_not_ec_p256_pem_is_one_line(model: SignedScope, tmp_path: Path) -> None:
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("hello")
    with pytest.raises(SigningError, match=f"{not_a_key}: expected a PEM EC P-256 private key"):
        sign_scope(model, not_a_key)
    assert not model.signature.exists()


def test_a_key_inside_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with pytest.raises(SigningError, match=r"WMTP_SIGNING_KEY=.* is inside the storage root"):
        require_outside(root / "keys" / "k.pem", root, "WMTP_SIGNING_KEY")
    require_outside(tmp_path / "keys" / "k.pem", root, "WMTP_SIGNING_KEY")


def test_the_signed_state_keeps_the_newest_payload_per_root_and_scope(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    assert read_signed_state(state) is None
    record_signed(state, tmp_path / "a", "models_v2/micro-mtp", Signed("1" * 64, {}))
    record_signed(state, tmp_path / "b", "models_v2/micro-mtp", Signed("2" * 64, {}))
    record_signed(state, tmp_path / "a", "models_v2/micro-mtp", Signed("3" * 64, {}))
    record = read_signed_state(state)
    assert record is not None
    assert record.roots[str(tmp_path / "a")]["models_v2/micro-mtp"].payload_sha256 == "3" * 64
    assert record.roots[str(tmp_path / "b")]["models_v2/micro-mtp"].payload_sha256 == "2" * 64
    state.write_text("[1, 2]")
    with pytest.raises(SigningError, match=f"{state}: expected a signed-state record"):
        read_signed_state(state)


def _statement(signature: Path) -> dict[str, Any]:
    """The in-toto statement a signature bundle carries, as JSON."""
    bundle = json.loads(signature.read_bytes())
    statement: dict[str, Any] = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return statement


class _LibraryFileSet(hashing.Config):
    """The reference for a partition: the library's own hashing of a fixed file list."""

    def __init__(self, files: list[Path]) -> None:
        super().__init__()
        self._files = files

    def hash(
        self,
        model_path: hashing.PathLike,
        *,
        files_to_hash: Iterable[hashing.PathLike] | None = None,
    ) -> manifest.Manifest:
        return super().hash(model_path, files_to_hash=self._files)


def _library_sign(scope: SignedScope, key: Path, out: Path) -> None:
    """What the library signs hashing every file from scratch, with the same configuration."""
    if scope.files is None:
        config = hashing.Config().set_ignored_paths(paths=ours._ignored_in_folder(scope))
    else:
        config = _LibraryFileSet([scope.folder / f for f in scope.files])
    signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(config).sign(
        scope.folder, out
    )


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files signing reads (every byte it hashes goes through ``sha256_file``)."""
    seen: list[str] = []
    real = ours.sha256_file

    def counting(path: Path | str) -> str:
        seen.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(ours, "sha256_file", counting)
    return seen


def test_reused_digests_sign_the_payload_the_library_signs_from_scratch(
    model: SignedScope, tmp_path: Path, reads: list[str]
) -> None:
    key, pub = write_key_pair(tmp_path / "keys")
    weights = model.folder / "safetensors" / "model.safetensors"
    writer = {weights: (sha256(weights.read_bytes()).hexdigest(), file_identity(weights))}
    signed = sign_scope(model, key, writer)
    assert "model.safetensors" not in reads and sorted(reads) == ["SOURCE.json", "metadata.json"]
    reference = tmp_path / "library.sig"
    _library_sign(model, key, reference)
    assert _statement(model.signature) == _statement(reference)
    library_verify(model.folder, model.signature, pub)
    assert signed.files["safetensors/model.safetensors"] == writer[weights]


def test_a_partition_signed_from_reused_digests_equals_the_librarys(tmp_path: Path) -> None:
    key, pub = write_key_pair(tmp_path / "keys")
    folder = tmp_path / "root" / "datasets_v2" / "mbpp"
    (folder / "processed").mkdir(parents=True)
    jsonl = folder / "processed" / "test.jsonl"
    jsonl.write_text('{"a": 1}\n')
    (folder / "processed" / "train.jsonl").write_text('{"a": 2}\n')
    scope = SignedScope(
        "datasets_v2/mbpp/test", folder, folder / "test.sig", ("processed/test.jsonl",)
    )
    sign_scope(scope, key, {jsonl: (sha256(jsonl.read_bytes()).hexdigest(), file_identity(jsonl))})
    _library_sign(scope, key, tmp_path / "library.sig")
    assert _statement(scope.signature) == _statement(tmp_path / "library.sig")
    library_verify(folder, scope.signature, pub, file_set=True)


def _rewrite_in_place(path: Path) -> None:
    """Flip one byte in place (same size, same inode) at a later mtime than before."""
    before = file_identity(path)
    with path.open("r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 1]))
    os.utime(path, ns=(before[1] + 1_000_000, before[1] + 1_000_000))  # a later write's mtime
    assert file_identity(path)[0::2] == before[0::2]


def test_the_record_is_reused_only_for_unchanged_files(
    model: SignedScope, tmp_path: Path, reads: list[str]
) -> None:
    key, pub = write_key_pair(tmp_path / "keys")
    state, root = tmp_path / "keys" / "state.json", tmp_path / "root"
    sign_and_record(model, key, state, root)
    assert len(reads) == 3
    reads.clear()
    sign_and_record(model, key, state, root)
    assert reads == []  # nothing changed: every digest from the record
    weights = model.folder / "safetensors" / "model.safetensors"
    _rewrite_in_place(weights)
    sign_and_record(model, key, state, root)
    assert reads == ["model.safetensors"]  # changed identity: hashed again
    library_verify(model.folder, model.signature, pub)
    assert (
        signed_payload(model.signature).files["safetensors/model.safetensors"]
        == sha256(weights.read_bytes()).hexdigest()
    )


def test_a_stale_digest_of_a_file_whose_identity_was_restored_fails_verification(
    model: SignedScope, tmp_path: Path
) -> None:
    """A rewrite that keeps size, inode and (set back) mtime cannot be told from identity: the
    old digest is signed, and the library's verifier refuses the folder rather than pass it."""
    key, pub = write_key_pair(tmp_path / "keys")
    weights = model.folder / "safetensors" / "model.safetensors"
    known = {weights: (sha256(weights.read_bytes()).hexdigest(), file_identity(weights))}
    mtime = file_identity(weights)[1]
    _rewrite_in_place(weights)
    os.utime(weights, ns=(mtime, mtime))
    sign_scope(model, key, known)
    with pytest.raises(ValueError, match=r"Hash mismatch for .{0,4}safetensors/model\.safetensors"):
        library_verify(model.folder, model.signature, pub)
    known[weights] = (known[weights][0], [0, 0, 0])  # any other identity: read from disk
    sign_scope(model, key, known)
    library_verify(model.folder, model.signature, pub)
