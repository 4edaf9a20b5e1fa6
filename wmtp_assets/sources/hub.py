"""Upstream files from the Hugging Face Hub, through the real ``huggingface_hub`` client.

One fetch resolves the requested revision to a commit once (``repo_info`` with file metadata:
the commit ``sha`` and, per file, size, git blob id and LFS SHA256), then downloads every
selected file at that commit with ``hf_hub_download`` into the client's download folder beside
``raw/`` (``.raw.incoming``, where it keeps its resume state; wiped before and after each fetch)
and moves it into its staged temporary in ``raw/``. The client only checks sizes, so each file
is verified here: LFS files by the SHA256 the Hub advertises (also their ETag), regular git files
by their git blob id; this re-reads each new file once (about 1 GB/s here, REFERENCE §7). The
SHA256 of every file is recorded in ``SOURCE.json``.

The library's own settings are honoured as it reads them: ``HF_ENDPOINT`` (when no endpoint is
given), ``HF_TOKEN`` (when no token is given), ``HF_HUB_OFFLINE``, ``HF_HUB_ETAG_TIMEOUT``,
``HF_HUB_DOWNLOAD_TIMEOUT``. In offline mode a fetch is served from ``raw/`` when its
``SOURCE.json`` already covers the request, else from the Hugging Face cache (a snapshot that
``hf download`` or ``snapshot_download`` left there, verified against its blob names), else it
fails with :class:`SourceUnreachableError`. Tokens never appear in messages, and no error this
module raises is chained to the library's exception (whose text may echo the token).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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
from huggingface_hub.hf_api import DatasetInfo, ModelInfo, RepoSibling
from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

from wmtp_assets.sources.contract import FetchResult, RepoRef, Source
from wmtp_assets.sources.errors import (
    SourceAuthError,
    SourceError,
    SourceFileMissingError,
    SourceUnreachableError,
)
from wmtp_assets.sources.install import RemoteFile, Snapshot, install_snapshot, select_files
from wmtp_assets.sources.progress import Progress, ProgressMeter
from wmtp_assets.sources.provenance import check_record, read_provenance
from wmtp_assets.sources.transfer import Digests, copy_and_hash, file_digests

T = TypeVar("T")
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

    def _fetch(self, ref: RepoRef, dest: Path, progress: Progress | None) -> FetchResult:
        if constants.is_offline_mode():
            return self._fetch_offline(ref, dest, progress)
        what = f"{ref}, files {list(ref.patterns)}"
        info = self._call(
            what,
            lambda: HfApi(endpoint=self._endpoint, token=self._token).repo_info(
                ref.repo_id,
                repo_type=ref.repo_type,
                revision=ref.revision,
                files_metadata=True,
                timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
            ),
        )
        if not isinstance(info, ModelInfo | DatasetInfo) or not info.sha or info.siblings is None:
            raise SourceError(f"{what}: {self.location} answered without a commit or file list")
        listing = {sibling.rfilename: _remote_file(sibling, what) for sibling in info.siblings}
        commit = info.sha
        downloads = dest.parent / f".{dest.name}.incoming"  # the client's own resume state

        def transfer(path: str, target: Path) -> Digests:
            local = self._call(
                f"{ref}, file '{path}'",
                lambda: hf_hub_download(
                    ref.repo_id,
                    path,
                    repo_type=ref.repo_type,
                    revision=commit,
                    local_dir=downloads,
                    endpoint=self._endpoint,
                    token=self._token,
                    tqdm_class=(
                        _reporting_bar(progress, path, listing[path].size) if progress else None
                    ),
                ),
            )
            os.replace(local, target)
            if progress:
                progress(f"{path}: downloaded, verifying its hash")
            return file_digests(target, git_blob=listing[path].git_blob_id is not None)

        shutil.rmtree(downloads, ignore_errors=True)
        try:
            return install_snapshot(
                ref, Snapshot("hub", self.location, commit, listing), transfer, dest, progress
            )
        finally:
            shutil.rmtree(downloads, ignore_errors=True)

    def _fetch_offline(self, ref: RepoRef, dest: Path, progress: Progress | None) -> FetchResult:
        """Serve from ``raw/`` or the Hugging Face cache; the network is off limits."""
        served = _serve_from_raw(ref, dest)
        if served is not None:
            if progress:
                progress(f"offline: {len(served.files)} file(s) served from {dest}")
            return served
        what = f"{ref}, files {list(ref.patterns)}"
        snapshot = Path(
            self._call(
                what,
                lambda: snapshot_download(
                    ref.repo_id,
                    repo_type=ref.repo_type,
                    revision=ref.revision,
                    allow_patterns=list(ref.patterns),
                    local_files_only=True,
                ),
            )
        )
        listing = _listing_from_cache(snapshot)

        def transfer(path: str, target: Path) -> Digests:
            meter = ProgressMeter(progress, path, listing[path].size) if progress else None
            return copy_and_hash(
                snapshot / path, target, git_blob=listing[path].git_blob_id is not None, meter=meter
            )

        cached = Snapshot("hub", self.location, snapshot.name, listing)
        try:
            return install_snapshot(ref, cached, transfer, dest, progress)
        except SourceFileMissingError as exc:  # the cache holds part of the snapshot only
            raise SourceUnreachableError(
                f"HF_HUB_OFFLINE is set and the Hugging Face cache lacks files: {exc}"
            ) from exc

    def _call(self, what: str, request: Callable[[], T]) -> T:
        """``request()``, with any failure raised as the :class:`SourceError` it means.

        The error is raised outside the ``except`` block, so neither ``__cause__`` nor
        ``__context__`` links it to the library's exception: a Hub or proxy that echoes the
        ``Authorization`` header would put the token in that one, and Dagster serialises chains.
        """
        try:
            return request()
        except Exception as exc:  # every library and transport failure, translated below
            error = self._translate(exc, what)
        raise error

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


def _serve_from_raw(ref: RepoRef, dest: Path) -> FetchResult | None:
    """The fetch ``raw/`` already satisfies, by its ``SOURCE.json`` and its re-hashed bytes."""
    try:
        previous = read_provenance(dest)
    except SourceError:
        return None
    if (
        previous is None
        or previous.kind != "hub"
        or (previous.repo_id, previous.repo_type) != (ref.repo_id, ref.repo_type)
        or ref.revision not in (previous.requested_revision, previous.resolved_commit)
    ):
        return None
    records = {record.path: record for record in previous.files}
    listing = {
        path: RemoteFile(size=record.size, sha256=record.sha256) for path, record in records.items()
    }
    try:
        selected = select_files(listing, ref, dest)
    except SourceError:
        return None
    if any(check_record(dest, records[path]) is not None for path in selected):
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
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # tqdm is untyped

        def update(self, n: float | None = 1) -> bool | None:
            if owner[0] is self:
                meter.advance(int(n or 0))
            shown: bool | None = super().update(n)
            return shown

        def close(self) -> None:
            if owner and owner[0] is self:
                meter.finish()
            super().close()

    return ReportingBar
