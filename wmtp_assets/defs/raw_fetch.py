"""The shared body of every ``raw`` asset: fetch through the source layer, report provenance."""

import hashlib
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from wmtp_assets.defs.download_slot import download_slot
from wmtp_assets.defs.metadata import sealed_files
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.sources import Provenance, RepoRef, RepoType


def provenance_version(provenance: Provenance, paths: Sequence[str] | None = None) -> str:
    """A data version that changes exactly when the fetched bytes change."""
    wanted = set(paths) if paths is not None else None
    digest = hashlib.sha256()
    for record in sorted(provenance.files, key=lambda r: r.path):
        if wanted is None or record.path in wanted:
            digest.update(f"{record.path}\0{record.sha256}\n".encode())
    return digest.hexdigest()[:16]


def fetch_raw(
    context: dg.AssetExecutionContext,
    wmtp: WmtpResource,
    repo_id: str,
    repo_type: RepoType,
    revision: str,
    patterns: Sequence[str],
    dest: Path,
) -> dg.MaterializeResult:
    """Fetch ``patterns`` of ``repo_id`` into ``dest`` (a ``raw/`` folder) and describe it; the
    fetch holds a slot of pool ``download`` (``download_slot``)."""
    ref = RepoRef(repo_id=repo_id, repo_type=repo_type, revision=revision, patterns=tuple(patterns))
    with download_slot(context, wmtp.lock_timeout_s):
        result = wmtp.source().fetch(ref, dest, progress=context.log.info)
    provenance = result.provenance
    fetched = sorted(result.files)
    by_path = {r.path: r for r in provenance.files}
    rows = ["| file | size (bytes) | SHA256 | reused |", "|---|---:|---|---|"]
    rows += [
        f"| `{p}` | {by_path[p].size:,} | `{by_path[p].sha256}` | {p in result.reused} |"
        for p in fetched
    ]
    return dg.MaterializeResult(
        metadata={
            "raw_dir": dg.MetadataValue.path(str(dest)),
            "source": dg.MetadataValue.text(f"{provenance.kind}: {provenance.location}"),
            "repo": dg.MetadataValue.text(f"{repo_type}s/{repo_id}"),
            "requested_revision": dg.MetadataValue.text(provenance.requested_revision),
            "resolved_commit": dg.MetadataValue.text(provenance.resolved_commit or "unknown"),
            "files": dg.MetadataValue.md("\n".join(rows)),
            "total_bytes": dg.MetadataValue.int(sum(by_path[p].size for p in fetched)),
            "reused_files": dg.MetadataValue.int(len(result.reused)),
            **sealed_files(wmtp.layout.root, known={dest / p: by_path[p].sha256 for p in fetched}),
        },
        data_version=dg.DataVersion(provenance_version(provenance, fetched)),
    )
