"""The demo's key pair: outside the root, one per root, private key readable by its owner only,
and a pair the ``model_signing`` library signs and verifies with."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wmtp_assets.demo.signing_keys import demo_keys, make_demo_keys


def test_one_key_pair_per_root_outside_it_made_once(tmp_path: Path) -> None:
    config, root = tmp_path / "config", tmp_path / "storage"
    assert demo_keys(root, config) is None
    keys = make_demo_keys(root, config)
    assert keys.folder.is_relative_to(config / "wmtp-assets" / "demo-signing")
    assert not keys.folder.is_relative_to(root)
    assert keys.signing_key.stat().st_mode & 0o777 == 0o600
    assert (keys.folder / "root.txt").read_text() == f"{root.resolve()}\n"
    private = serialization.load_pem_private_key(keys.signing_key.read_bytes(), None)
    public = serialization.load_pem_public_key(keys.verify_key.read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    assert private.public_key().public_numbers() == public.public_numbers()
    before = keys.signing_key.read_bytes()
    assert make_demo_keys(root, config) == keys and keys.signing_key.read_bytes() == before
    assert demo_keys(root, config) == keys
    assert demo_keys(tmp_path / "elsewhere", config) is None
    assert make_demo_keys(tmp_path / "elsewhere", config).folder != keys.folder
