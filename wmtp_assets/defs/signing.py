"""Sign what an asset just published, when ``WMTP_SIGNING_KEY`` is set (core:
``wmtp_assets.files.signing``; which files: ``wmtp_assets.validate.signed_scopes``).

Every asset that writes into a model folder or a partition re-signs it after publishing, so the
signature covers what is on disk when the step ends, and the signed-state record outside the
root moves to it. Without a key nothing is signed and the metadata says so.
"""

from __future__ import annotations

import time

import dagster as dg

from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.files.signing import SignedScope, record_signed, require_outside, sign_scope
from wmtp_assets.validate.signed_scopes import model_scope, partition_scopes


def sign_published(wmtp: WmtpResource, scopes: list[SignedScope]) -> dict[str, dg.MetadataValue]:
    """Sign ``scopes`` with the resource's key; the signatures' paths and the seconds it took."""
    settings = wmtp.settings
    key = settings.signing_key
    if key is None:
        return {"signatures": dg.MetadataValue.text("unsigned (WMTP_SIGNING_KEY unset)")}
    require_outside(key, settings.storage_root, "WMTP_SIGNING_KEY")
    state = settings.signed_state_for(key)
    require_outside(state, settings.storage_root, "WMTP_SIGNED_STATE")
    started = time.monotonic()
    for scope in scopes:
        digest = sign_scope(scope, key)
        record_signed(state, settings.storage_root, scope.name, digest)
    return {
        "signatures": dg.MetadataValue.json([str(s.signature) for s in scopes]),
        "signing_seconds": dg.MetadataValue.float(time.monotonic() - started),
    }


def sign_model(wmtp: WmtpResource, model: str) -> dict[str, dg.MetadataValue]:
    return sign_published(wmtp, [model_scope(wmtp.layout, model)])


def sign_partition(wmtp: WmtpResource, key: str) -> dict[str, dg.MetadataValue]:
    return sign_published(wmtp, partition_scopes(wmtp.layout, key))


def with_signatures(
    result: dg.MaterializeResult, signatures: dict[str, dg.MetadataValue]
) -> dg.MaterializeResult:
    """``result`` with the signing metadata added (for assets whose result a helper built)."""
    return result._replace(metadata={**(result.metadata or {}), **signatures})
