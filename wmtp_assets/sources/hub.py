"""Upstream files from the Hugging Face Hub, through the real ``huggingface_hub`` client.

One fetch resolves the requested revision to a commit once (``repo_info`` with file metadata:
the commit ``sha`` and, per file, size, git blob id and LFS SHA256), then downloads every
selected file at that commit with ``hf_hub_download`` into the staging folder beside ``raw/``.
The client only checks sizes, so each file is verified here: LFS files by the SHA256 the Hub
advertises (also their ETag), regular git files by their git blob id; this re-reads each new
file once (about 1 GB/s here, REFERENCE §7). The SHA256 of every file is recorded in
``SOURCE.json``.

The library's own settings are honoured as it reads them: ``HF_ENDPOINT`` (when no endpoint is
given), ``HF_TOKEN`` (when no token is given), ``HF_HUB_OFFLINE``, ``HF_HUB_ETAG_TIMEOUT``,
``HF_HUB_DOWNLOAD_TIMEOUT``. In offline mode a fetch is served from ``raw/`` when its
``SOURCE.json`` already covers the request, else from the Hugging Face cache (a snapshot that
``hf download`` or ``snapshot_download`` left there, verified against its blob names), else it
fails with :class:`SourceUnreachableError`. Tokens never appear in messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoSibling
from huggingface_hub.utils import tqdm as hf_tqdm

from wmtp_assets.sources.base import (
    Digests,
    FetchResult,
    Progress,
    ProgressMeter,
    RemoteFile,
    RepoType,
    Source,
    SourceAuthError,
    SourceError,
    SourceFileMissingError,
    SourceUnreachableError,
    copy_and_hash,
    describe,
    fetch_into_raw,
    file_digests,
    read_provenance,
    record_present,
    select_files,
)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")


class HubSource(Source):
    """Fetches from the Hub (or a Hub-compatible endpoint) with ``huggingface_hub``.

    ``endpoint`` None uses the library's default (``HF_ENDPOINT`` or huggingface.co); ``token``
    None lets the library find one (``HF_TOKEN``, the saved login).
    """

    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        self._token = token

    @property
    def location(self) -> str:
        """The endpoint URL requests go to (recorded as the provenance ``location``)."""
        return self._endpoint or constants.ENDPOINT

    def __repr__(self) -> str:  # never show the token
        return f"HubSource(endpoint={self.location!r})"

    def fetch(
        self,
        repo_id: str,
        repo_type: RepoType,
        revision: str,
        patterns: Sequence[str],
        dest: Path,
        progress: Progress | None = None,
    ) -> FetchResult:
        if constants.is_offline_mode():
            return self._fetch_offline(repo_id, repo_type, revision, patterns, Path(dest), progress)
        repo = describe(repo_type, repo_id, revision)
        what = f"{repo}, files {list(patterns)}"
        try:
            info = HfApi(endpoint=self._endpoint, token=self._token).repo_info(
                repo_id,
                repo_type=repo_type,
                revision=revision,
                files_metadata=True,
                timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
            )
        except Exception as exc:
            raise self._translate(exc, what) from exc
        if not info.sha or info.siblings is None:
            raise SourceError(f"{what}: {self.location} answered without a commit or file list")
        listing = {sibling.rfilename: _remote_file(sibling, what) for sibling in info.siblings}
        commit = info.sha

        def transfer(path: str, staging_dir: Path) -> Digests:
            try:
                local = hf_hub_download(
                    repo_id,
                    path,
                    repo_type=repo_type,
                    revision=commit,
                    local_dir=staging_dir,
                    endpoint=self._endpoint,
                    token=self._token,
                    tqdm_class=(
                        _reporting_bar(progress, path, listing[path].size) if progress else None
                    ),
                )
            except Exception as exc:
                raise self._translate(exc, f"{repo}, file '{path}'") from exc
            if progress:
                progress(f"{path}: downloaded, verifying its hash")
            return file_digests(Path(local), git_blob=listing[path].git_blob_id is not None)

        return fetch_into_raw(
            dest=Path(dest),
            kind="hub",
            location=self.location,
            repo_id=repo_id,
            repo_type=repo_type,
            revision=revision,
            resolved_commit=commit,
            listing=listing,
            patterns=patterns,
            transfer=transfer,
            progress=progress,
        )

    def _fetch_offline(
        self,
        repo_id: str,
        repo_type: RepoType,
        revision: str,
        patterns: Sequence[str],
        dest: Path,
        progress: Progress | None,
    ) -> FetchResult:
        """Serve from ``raw/`` or the Hugging Face cache; the network is off limits."""
        served = _serve_from_raw(repo_id, repo_type, revision, patterns, dest)
        if served is not None:
            if progress:
                progress(f"offline: {len(served.files)} file(s) served from {dest}")
            return served
        repo = describe(repo_type, repo_id, revision)
        what = f"{repo}, files {list(patterns)}"
        try:
            snapshot = Path(
                snapshot_download(
                    repo_id,
                    repo_type=repo_type,
                    revision=revision,
                    allow_patterns=list(patterns),
                    local_files_only=True,
                )
            )
        except Exception as exc:
            raise self._translate(exc, what) from exc
        listing = _listing_from_cache(snapshot)

        def transfer(path: str, staging_dir: Path) -> Digests:
            target = staging_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            meter = ProgressMeter(progress, path, listing[path].size) if progress else None
            return copy_and_hash(
                snapshot / path, target, git_blob=listing[path].git_blob_id is not None, meter=meter
            )

        try:
            return fetch_into_raw(
                dest=dest,
                kind="hub",
                location=self.location,
                repo_id=repo_id,
                repo_type=repo_type,
                revision=revision,
                resolved_commit=snapshot.name,
                listing=listing,
                patterns=patterns,
                transfer=transfer,
                progress=progress,
            )
        except SourceFileMissingError as exc:  # the cache holds part of the snapshot only
            raise SourceUnreachableError(
                f"HF_HUB_OFFLINE is set and the Hugging Face cache lacks files: {exc}"
            ) from exc

    def _translate(self, exc: Exception, what: str) -> SourceError:
        """The :class:`SourceError` a library or network exception means, with the token removed."""
        detail = self._redact(f"({type(exc).__name__}: {' '.join(str(exc).split())[:400]})")
        status = exc.response.status_code if isinstance(exc, HfHubHTTPError) else None
        if isinstance(exc, OfflineModeIsEnabled | LocalEntryNotFoundError):
            return SourceUnreachableError(
                f"{what}: not available locally and the Hub cannot be used"
                f" (HF_HUB_OFFLINE={'1' if constants.is_offline_mode() else 'unset'},"
                f" endpoint {self.location}). {detail}"
            )
        if isinstance(exc, GatedRepoError) or status in (401, 403):
            kind = (
                "is gated" if isinstance(exc, GatedRepoError) else "is private or gated (or absent)"
            )
            return SourceAuthError(
                f"{what}: access denied by {self.location}; the repo {kind}. Set HF_TOKEN to a"
                " token of an account that has accepted the repo's licence on its Hub page, then"
                " retry."
                f" {detail}"
            )
        if isinstance(exc, RevisionNotFoundError):
            return SourceFileMissingError(f"{what}: the revision does not exist. {detail}")
        if isinstance(exc, RepositoryNotFoundError):
            return SourceFileMissingError(f"{what}: the repo does not exist. {detail}")
        if isinstance(exc, EntryNotFoundError):
            return SourceFileMissingError(f"{what}: the file does not exist. {detail}")
        if isinstance(exc, httpx2.TransportError) or (status is not None and status >= 500):
            return SourceUnreachableError(
                f"{what}: could not reach or read from {self.location}, even after the client's"
                f" retries. {detail}"
            )
        return SourceError(f"{what}: download failed. {detail}")

    def _redact(self, text: str) -> str:
        for secret in (
            self._token,
            os.environ.get("HF_TOKEN"),
            os.environ.get("HUGGING_FACE_HUB_TOKEN"),
        ):
            if secret:
                text = text.replace(secret, "<token>")
        return text


def _remote_file(sibling: RepoSibling, what: str) -> RemoteFile:
    """What the listing states about one file: LFS SHA256, else the git blob id."""
    if sibling.lfs is not None:
        return RemoteFile(size=sibling.lfs.size, sha256=sibling.lfs.sha256)
    if sibling.blob_id is None:
        raise SourceError(f"{what}: the listing gives no hash for '{sibling.rfilename}'")
    return RemoteFile(size=sibling.size, git_blob_id=sibling.blob_id)


def _serve_from_raw(
    repo_id: str, repo_type: RepoType, revision: str, patterns: Sequence[str], dest: Path
) -> FetchResult | None:
    """The fetch ``raw/`` already satisfies, by its ``SOURCE.json``, or None."""
    try:
        previous = read_provenance(dest)
    except SourceError:
        return None
    if (
        previous is None
        or previous.kind != "hub"
        or (previous.repo_id, previous.repo_type) != (repo_id, repo_type)
        or revision not in (previous.requested_revision, previous.resolved_commit)
    ):
        return None
    records = {record.path: record for record in previous.files}
    listing = {
        path: RemoteFile(size=record.size, sha256=record.sha256) for path, record in records.items()
    }
    try:
        selected = select_files(
            listing, patterns, repo=describe(repo_type, repo_id, revision), dest=dest
        )
    except SourceError:
        return None
    if not all(record_present(dest, records[path]) for path in selected):
        return None
    return FetchResult(
        files={path: dest / path for path in selected}, provenance=previous, reused=tuple(selected)
    )


def _listing_from_cache(snapshot: Path) -> dict[str, RemoteFile]:
    """Files of a cached snapshot; each links to a blob named by its ETag (SHA256 or git sha1)."""
    listing: dict[str, RemoteFile] = {}
    for path in sorted(snapshot.rglob("*")):
        if not path.is_file():
            continue
        blob = path.resolve()
        etag = blob.name
        listing[path.relative_to(snapshot).as_posix()] = RemoteFile(
            size=blob.stat().st_size,
            sha256=etag if _SHA256.fullmatch(etag) else None,
            git_blob_id=etag if _GIT_SHA1.fullmatch(etag) else None,
        )
    return listing


def _reporting_bar(progress: Progress, label: str, total: int | None) -> type[hf_tqdm]:
    """A progress-bar class for the client that also reports bytes and rate to ``progress``.

    Only the first bar the client opens for the file reports (a Xet download opens a second one
    for network bytes; a resumed HTTP download reuses the first).
    """
    meter = ProgressMeter(progress, label, total)
    owner: list[hf_tqdm] = []

    class ReportingBar(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if not owner:
                owner.append(self)
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if owner[0] is self:
                meter.advance(int(n or 0))
            return super().update(n)

        def close(self) -> None:
            if owner and owner[0] is self:
                meter.finish()
            super().close()

    return ReportingBar
