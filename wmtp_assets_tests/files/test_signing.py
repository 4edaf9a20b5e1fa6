"""Signing a model folder or a file set, checked with the ``model_signing`` library's own
verifier (what a consumer runs, with nothing of ours), and the signed-state record."""

from __future__ import annotations

from hashlib import sha256
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from model_signing import verifying

from wmtp_assets.files.signing import (
    SignedScope,
    SigningError,
    read_signed_state,
    record_signed,
    require_outside,
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
    record_signed(state, tmp_path / "a", "models_v2/micro-mtp", "1" * 64)
    record_signed(state, tmp_path / "b", "models_v2/micro-mtp", "2" * 64)
    record_signed(state, tmp_path / "a", "models_v2/micro-mtp", "3" * 64)
    record = read_signed_state(state)
    assert record is not None
    assert record.roots[str(tmp_path / "a")]["models_v2/micro-mtp"].payload_sha256 == "3" * 64
    assert record.roots[str(tmp_path / "b")]["models_v2/micro-mtp"].payload_sha256 == "2" * 64
    state.write_text("[1, 2]")
    with pytest.raises(SigningError, match=f"{state}: expected a signed-state record"):
        read_signed_state(state)
