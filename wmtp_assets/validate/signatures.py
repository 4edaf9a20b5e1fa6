"""The signature check, ``signature_valid``: the one place that proves a model folder or a
partition against ``WMTP_VERIFY_KEY`` and the signed-state record (docs/reliability.md,
section 5). The scheduled ``revalidate`` job and ``wmtp-assets verify`` (which runs the same
plan) both run it.

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

from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.files.signing import (
    SignedPayload,
    SignedScope,
    SigningError,
    read_signed_state,
    signed_payload,
)
from wmtp_assets.settings import Settings
from wmtp_assets.validate.outcome import CheckOutcome, counted
from wmtp_assets.validate.signed_scopes import is_stored

SELF_CONSISTENT_ONLY = (
    "signatures: not checked (WMTP_VERIFY_KEY unset): this proof is self-consistent only; "
    "whoever can write the storage root can rewrite its files and seals alike"
)


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


def signature_valid(
    root: Path, scopes: Sequence[SignedScope], key: Path, state_file: Path
) -> CheckOutcome:
    """The artifact's signatures (its model folder's `model.sig`; a partition's
    `signatures/<split>.sig` and its small subset's) verify with WMTP_VERIFY_KEY by the
    `model_signing` library's own verifier, cover exactly the files stored, and are the newest
    that the signed-state record (WMTP_SIGNED_STATE, outside the root) holds for this root: an
    older valid signature, or a signed scope now absent, is a rollback. Run by the revalidation
    (`revalidate`, `wmtp-assets verify`) only where WMTP_VERIFY_KEY is set; without it this
    check is not run and the revalidation proves self-consistency only: whoever can write the
    storage root can rewrite its files and seals alike."""
    state = read_signed_state(state_file)
    recorded = state.roots.get(str(root.resolve()), {}) if state is not None else {}
    failures: list[str] = []
    checked: list[str] = []
    for scope in scopes:
        newest = recorded.get(scope.name)
        if not is_stored(scope):
            if newest is not None:
                failures.append(
                    f"{scope.name}: rolled back: signed {newest.signed_at} (recorded in "
                    f"{state_file}) but absent"
                )
            continue
        checked.append(scope.name)
        payload, failure = verify_scope(scope, key)
        if failure is not None:
            failures.append(failure)
        elif newest is not None and payload is not None and payload.sha256 != newest.payload_sha256:
            failures.append(
                f"{scope.name}: rolled back: its signature is valid but older than the newest "
                f"signed state ({newest.signed_at}, recorded in {state_file})"
            )
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        return CheckOutcome.fail(failures[0] + more, failures=failures, verify_key=str(key))
    rollback = (
        f"newest signed state per {state_file}"
        if state is not None
        else f"rollback not checked: no signed-state record at {state_file}"
    )
    what = ", ".join(checked) or "nothing stored"
    return CheckOutcome.ok(
        f"{counted(len(checked), 'signature')} valid for {key} ({what}); {rollback}",
        scopes=checked,
        verify_key=str(key),
    )


def recorded_scopes(settings: Settings) -> list[str] | None:
    """The scopes the signed-state record holds for the settings' root (the revalidation checks
    each one's owner, so a scope rolled away entirely is still reported); None without
    ``WMTP_VERIFY_KEY`` (no signature is checked)."""
    key = settings.verify_key
    if key is None:
        return None
    state = read_signed_state(settings.signed_state_for(key))
    return sorted(state.roots.get(str(settings.storage_root.resolve()), {})) if state else []


SIGNATURE_CHECK = signature_valid.__name__


def signatures_line(settings: Settings, results: Sequence[bool]) -> str:
    """What verify says about signatures: how many ``signature_valid`` checks ran with which
    key and how many failed (``results``: each one's passed), or that none could run."""
    key = settings.verify_key
    if key is None:
        return SELF_CONSISTENT_ONLY
    return f"signatures: {len(results)} checked with {key}, {results.count(False)} failed"
