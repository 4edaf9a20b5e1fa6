"""The demo's signing key pair, kept outside the storage root it signs.

``wmtp-assets demo`` (without ``WMTP_SIGNING_KEY``) makes one EC P-256 key pair per storage root
under ``$XDG_CONFIG_HOME/wmtp-assets/demo-signing/<root id>/`` (``~/.config`` when unset), the
root id being the first 16 hex digits of the SHA256 of the root's resolved path:
``signing_key.pem`` (mode 0600), ``verify_key.pem``, the signed-state record
``wmtp-signed-state.json`` and ``root.txt`` (which root, for a person). Settings find them by the
root's path, so ``wmtp-assets verify`` after the demo checks signatures with no setting; a moved
or copied root has no demo keys (set ``WMTP_VERIFY_KEY``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wmtp_assets.files.atomic import atomic_write_bytes, atomic_write_text

DEMO_SIGNING_DIR = Path("wmtp-assets") / "demo-signing"


@dataclass(frozen=True)
class DemoKeys:
    folder: Path

    @property
    def signing_key(self) -> Path:
        return self.folder / "signing_key.pem"

    @property
    def verify_key(self) -> Path:
        return self.folder / "verify_key.pem"

    @property
    def signed_state(self) -> Path:
        return self.folder / "wmtp-signed-state.json"


def demo_key_folder(root: Path, config_home: Path) -> Path:
    """Where the demo's keys for ``root`` live (whether or not they exist)."""
    root_id = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return config_home / DEMO_SIGNING_DIR / root_id


def demo_keys(root: Path, config_home: Path) -> DemoKeys | None:
    """The demo's keys for ``root``, or None when the demo made none for it."""
    keys = DemoKeys(demo_key_folder(root, config_home))
    return keys if keys.signing_key.is_file() and keys.verify_key.is_file() else None


def make_demo_keys(root: Path, config_home: Path) -> DemoKeys:
    """The demo's keys for ``root``, generated on first use (the public key written last, so a
    half-made pair is never found)."""
    existing = demo_keys(root, config_home)
    if existing is not None:
        return existing
    keys = DemoKeys(demo_key_folder(root, config_home))
    keys.folder.mkdir(parents=True, exist_ok=True)
    keys.folder.chmod(0o700)
    private = ec.generate_private_key(ec.SECP256R1())
    atomic_write_bytes(
        keys.signing_key,
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    keys.signing_key.chmod(0o600)
    atomic_write_text(keys.folder / "root.txt", f"{root.resolve()}\n")
    atomic_write_bytes(
        keys.verify_key,
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return keys
