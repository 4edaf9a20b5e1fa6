"""Verify's signature pass: every signed scope against ``WMTP_VERIFY_KEY`` and the signed-state
record (docs/reliability.md, "What a signature proves").

A scope fails when its signature is missing, does not verify with the key (another key, a
damaged bundle), or is stale (a file changed, added or removed after signing); the storage is
behind its newest signed state when a signature verifies but is not the newest one recorded for
that scope, or a recorded scope is gone. Checking is the ``model_signing`` library's own
verifier; the file-set, subject and record comparisons are ours on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from model_signing import verifying
from pydantic import BaseModel

from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.files.layout import Layout
from wmtp_assets.files.signing import (
    SignedPayload,
    SignedScope,
    SigningError,
    read_signed_state,
    signed_payload,
)
from wmtp_assets.settings import Settings
from wmtp_assets.validate.signed_scopes import stored_scopes

SELF_CONSISTENT_ONLY = (
    "signatures: not checked (WMTP_VERIFY_KEY unset): this proof is self-consistent only; "
    "whoever can write the storage root can rewrite its files and seals alike"
)


class SignatureReport(BaseModel):
    """What verify prints about signatures: ``failures`` each name a scope; ``notes`` do not
    fail verify (e.g. no key, no signed-state record)."""

    checked: int = 0
    failures: list[str] = []
    notes: list[str] = []

    def lines(self) -> list[str]:
        return [*self.failures, *self.notes]


def _verifier(key: Path) -> verifying.Config:
    try:
        config = verifying.Config()  # type: ignore[no-untyped-call]
        return config.use_elliptic_key_verifier(public_key=key)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningError(f"WMTP_VERIFY_KEY={key}: expected a PEM EC public key ({exc})") from None


def verify_scope(scope: SignedScope, key: Path) -> tuple[SignedPayload | None, str | None]:
    """The scope's signed payload when it verifies, else the failure naming the scope."""
    if not scope.signature.is_file():
        return None, f"{scope.name}: not signed ({scope.signature} is missing)"
    config = _verifier(key).set_ignore_unsigned_files(scope.files is not None)
    try:
        config.verify(scope.folder, scope.signature)
        payload = signed_payload(scope.signature)
    except (ValueError, KeyError, InvalidSignature) as exc:
        detail = str(exc) or type(exc).__name__
        if "Signature mismatch" in detail or "Cannot use" in detail:
            changed = _changed_since_signing(scope)
            what = f"changed or missing: {', '.join(changed)}" if changed else detail
            return None, f"{scope.name}: stale signature, files changed after signing ({what})"
        return None, f"{scope.name}: signature not valid for WMTP_VERIFY_KEY={key} ({detail})"
    if payload.subject != scope.folder.name:
        return None, f"{scope.name}: {scope.signature} signs {payload.subject!r}, not this folder"
    if scope.files is not None and set(payload.files) != set(scope.files):
        unsigned = sorted(set(scope.files) - set(payload.files))
        return None, f"{scope.name}: stale signature, not covering {', '.join(unsigned)}"
    return payload, None


def _changed_since_signing(scope: SignedScope) -> list[str]:
    """The signed files whose bytes are no longer those signed (the library's message gives
    digests as Python bytes; this names files)."""
    signed = signed_payload(scope.signature).files
    return [
        name
        for name, digest in sorted(signed.items())
        if not (path := scope.folder / name).is_file() or sha256_file(path) != digest
    ]


def verify_signatures(
    layout: Layout,
    key: Path | None,
    state_file: Path | None,
    models: Sequence[str] | None = None,
    partitions: Sequence[str] | None = None,
) -> SignatureReport:
    """Check every stored scope (or the named models and partitions) against ``key`` and
    compare it with the signed-state record; without a key, say the proof is self-consistent."""
    if key is None:
        return SignatureReport(notes=[SELF_CONSISTENT_ONLY])
    scopes = stored_scopes(layout, models, partitions)
    state = read_signed_state(state_file) if state_file is not None else None
    recorded = state.roots.get(str(layout.root.resolve()), {}) if state is not None else {}
    report = SignatureReport(checked=len(scopes))
    for scope in scopes:
        payload, failure = verify_scope(scope, key)
        newest = recorded.get(scope.name)
        if failure is not None:
            report.failures.append(failure)
        elif newest is not None and payload is not None and payload.sha256 != newest.payload_sha256:
            report.failures.append(
                f"{scope.name}: rolled back: its signature is valid but older than the newest "
                f"signed state ({newest.signed_at}, recorded in {state_file})"
            )
    if models is None and partitions is None:
        present = {s.name for s in scopes}
        report.failures += [
            f"{name}: rolled back: signed {entry.signed_at} (recorded in {state_file}) but absent"
            for name, entry in sorted(recorded.items())
            if name not in present
        ]
    if state is None:
        report.notes.append(
            f"signatures: rollback not checked: no signed-state record at {state_file}"
        )
    report.notes.append(
        f"signatures: {len(scopes)} checked with {key}, {len(report.failures)} failed"
    )
    return report


def settings_signature_report(
    settings: Settings,
    models: Sequence[str] | None = None,
    partitions: Sequence[str] | None = None,
) -> SignatureReport:
    """``verify_signatures`` with the key and record the settings name."""
    key = settings.verify_key
    state = settings.signed_state_for(key) if key is not None else None
    return verify_signatures(Layout(settings.storage_root), key, state, models, partitions)
