"""Sign what an asset just published, when ``WMTP_SIGNING_KEY`` is set (core:
``wmtp_assets.files.signing``; which files: ``wmtp_assets.validate.signed_scopes``).

Every asset that writes into a model folder or a partition re-signs it after publishing, so the
signature covers what is on disk when the step ends, and the signed-state record outside the
root moves to it. Re-signing costs no re-hashing: a file's SHA256 comes from the seal of what
this step published (its writer's digest) or from the scope's last signing, while the file keeps
the identity it had then; only other files are read. Without a key nothing is signed and the
metadata says so.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg

from wmtp_assets.defs.metadata import sealed_digests
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.files.signing import SignedScope, require_outside, sign_and_record
from wmtp_assets.validate.signed_scopes import model_scope, partition_scopes

Published = Mapping[str, object]
"""The metadata of a result this step publishes (its seal: ``defs.metadata.sealed_files``)."""


def sign_published(
    wmtp: WmtpResource, scopes: list[SignedScope], published: Sequence[Published] = ()
) -> dict[str, dg.MetadataValue]:
    """Sign ``scopes`` with the resource's key, reusing the digests sealed in ``published``;
    the signatures' paths and the seconds it took."""
    settings = wmtp.settings
    key = settings.signing_key
    if key is None:
        return {"signatures": dg.MetadataValue.text("unsigned (WMTP_SIGNING_KEY unset)")}
    require_outside(key, settings.storage_root, "WMTP_SIGNING_KEY")
    state = settings.signed_state_for(key)
    require_outside(state, settings.storage_root, "WMTP_SIGNED_STATE")
    known: dict[Path, tuple[str, Sequence[int]]] = {}
    for metadata in published:
        known |= sealed_digests(settings.storage_root, metadata)
    started = time.monotonic()
    for scope in scopes:
        sign_and_record(scope, key, state, settings.storage_root, known)
    return {
        "signatures": dg.MetadataValue.json([str(s.signature) for s in scopes]),
        "signing_seconds": dg.MetadataValue.float(time.monotonic() - started),
    }


def sign_model(
    wmtp: WmtpResource, model: str, result: dg.MaterializeResult
) -> dg.MaterializeResult:
    """``result`` with ``model``'s folder signed (reusing its seal's digests) and said so."""
    metadata = result.metadata or {}
    signatures = sign_published(wmtp, [model_scope(wmtp.layout, model)], [metadata])
    return result._replace(metadata={**metadata, **signatures})


def sign_partition(
    wmtp: WmtpResource, key: str, published: Sequence[Published] = ()
) -> dict[str, dg.MetadataValue]:
    """Sign partition ``key``'s scopes, reusing the digests sealed in ``published``."""
    return sign_published(wmtp, partition_scopes(wmtp.layout, key), published)


def with_signatures(
    result: dg.MaterializeResult, signatures: dict[str, dg.MetadataValue]
) -> dg.MaterializeResult:
    """``result`` with the signing metadata added (for assets whose result a helper built)."""
    return result._replace(metadata={**(result.metadata or {}), **signatures})
