"""Select, transfer, verify and install one repo snapshot's files into ``raw/``.

Shared by every source (the contract is ``contract``'s docstring): a source states what the
snapshot holds (:class:`Snapshot`) and how to put one file's bytes into a staged path (a
``Transfer``); this module decides what to reuse, checks every transferred byte against what the
source stated, and publishes files and ``SOURCE.json`` through ``files.staging``.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, NamedTuple

from wmtp_assets.files.atomic import json_bytes, sweep_tmp_of
from wmtp_assets.files.layout import UnsafePathError
from wmtp_assets.files.staging import Staging
from wmtp_assets.sources.contract import FetchResult, RepoRef
from wmtp_assets.sources.errors import ChecksumMismatchError, SourceError, SourceFileMissingError
from wmtp_assets.sources.progress import Progress
from wmtp_assets.sources.provenance import (
    SOURCE_FILE,
    FileRecord,
    Provenance,
    checked_repo_path,
    read_provenance,
    record_present,
)
from wmtp_assets.sources.transfer import Transfer, file_digests


class RemoteFile(NamedTuple):
    """What a source states about one file before transfer: the facts its bytes must meet.

    ``sha256`` and ``git_blob_id`` (git's sha1 of ``b"blob <size>\\0" + content``) are checked
    when known; ``mtime_ns`` only serves to recognise an unchanged file of an unversioned mirror.
    """

    size: int | None
    sha256: str | None = None
    git_blob_id: str | None = None
    mtime_ns: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """What a source serves for a :class:`RepoRef`: every file of the resolved revision."""

    kind: Literal["hub", "mirror"]
    location: str
    resolved_commit: str | None
    files: Mapping[str, RemoteFile]


def select_files(available: Mapping[str, RemoteFile], ref: RepoRef, dest: Path) -> list[str]:
    """The repo paths matching ``ref.patterns``, sorted; every pattern must match, every path be
    safe."""
    if not ref.patterns:
        raise ValueError(f"{ref}: at least one file pattern is needed")
    selected: set[str] = set()
    for pattern in ref.patterns:
        matches = [path for path in available if fnmatch.fnmatchcase(path, pattern)]
        if not matches:
            sample = ", ".join(sorted(available)[:10]) or "no files"
            raise SourceFileMissingError(
                f"{ref}: no file matches pattern '{pattern}' (the repo has: {sample}"
                f"{', ...' if len(available) > 10 else ''})"
            )
        selected.update(matches)
    for path in selected:
        try:
            checked_repo_path(dest, path)
        except UnsafePathError as exc:
            raise SourceError(f"{ref}: upstream file '{path}' is unsafe: {exc}") from None
    return sorted(selected)


def install_snapshot(
    ref: RepoRef,
    snapshot: Snapshot,
    transfer: Transfer,
    dest: Path,
    progress: Progress | None,
) -> FetchResult:
    """Make ``dest`` hold the files of ``snapshot`` that ``ref`` selects, under the contract."""
    selected = select_files(snapshot.files, ref, dest)
    previous = _previous_provenance(dest, progress)
    previous_records = {record.path: record for record in previous.files} if previous else {}
    records: list[FileRecord] = []
    reused: list[str] = []
    record_path = dest / SOURCE_FILE
    with Staging(remove_new_folders=True) as staging:  # the fetch lock covers dest's parent
        for path in selected:
            target = checked_repo_path(dest, path)
            sweep_tmp_of(target)
            remote = snapshot.files[path]
            record = previous_records.get(path)
            if record is not None and (kept := _reusable(record, remote, target, progress)):
                records.append(kept)
                reused.append(path)
                _say(progress, f"{path}: unchanged since the last fetch and intact, reused")
                continue
            staged = staging.stage(target)
            try:
                digests = transfer(path, staged)
                size = staged.stat().st_size
            except OSError as exc:  # local disk trouble; network errors arrive as SourceError
                raise SourceError(
                    f"{ref}: file '{path}' could not be staged as {staged}: {exc}"
                ) from exc
            _verify(ref, path, remote, size, digests.sha256, digests.git_blob_id)
            records.append(FileRecord(path=path, size=size, sha256=digests.sha256))
        provenance = Provenance(
            kind=snapshot.kind,
            location=snapshot.location,
            repo_id=ref.repo_id,
            repo_type=ref.repo_type,
            requested_revision=ref.revision,
            resolved_commit=snapshot.resolved_commit,
            files=records,
            fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        merged = _merge(provenance, previous, dest)
        replaced = set(selected) - set(reused)
        retract = [record_path] if replaced.intersection(previous_records) else []
        try:
            sweep_tmp_of(record_path)
            staging.stage(record_path).write_bytes(json_bytes(merged.model_dump(mode="json")))
            staging.publish(retract=retract)
        except OSError as exc:
            raise SourceError(
                f"{ref}: installing the fetched files into {dest} failed: {exc}"
            ) from exc
    if previous is not None and not previous.same_snapshot(provenance):
        _remove_unlisted(dest, previous, merged)
    return FetchResult(
        files={path: dest / path for path in selected}, provenance=merged, reused=tuple(reused)
    )


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def _previous_provenance(dest: Path, progress: Progress | None) -> Provenance | None:
    """The current record of ``dest``; an unreadable one only costs a full transfer."""
    try:
        return read_provenance(dest)
    except SourceError as exc:
        _say(progress, f"ignoring the previous record, every file will be fetched again: {exc}")
        return None


def _reusable(
    record: FileRecord, remote: RemoteFile, local: Path, progress: Progress | None
) -> FileRecord | None:
    """The record of ``local`` if it holds the bytes ``remote`` describes, else None.

    The record must still match what the source states, and the local bytes are re-hashed:
    a record only says what was written, not what the disk holds now.
    """
    try:
        stat = local.stat()
    except FileNotFoundError:
        return None
    if stat.st_size != record.size or remote.size not in (None, record.size):
        return None
    if remote.sha256 is not None and remote.sha256 != record.sha256:
        return None
    unversioned = remote.sha256 is None and remote.git_blob_id is None
    if unversioned and (remote.mtime_ns is None or remote.mtime_ns != stat.st_mtime_ns):
        return None
    _say(progress, f"{record.path}: verifying the copy already in raw/")
    digests = file_digests(local, git_blob=remote.git_blob_id is not None)
    if remote.git_blob_id is not None:  # the record's SHA256 is re-derived from proven bytes
        if digests.git_blob_id != remote.git_blob_id:
            return None
        return FileRecord(path=record.path, size=record.size, sha256=digests.sha256)
    return record if digests.sha256 == record.sha256 else None


def _verify(
    ref: RepoRef, path: str, remote: RemoteFile, size: int, sha256: str, git_blob_id: str | None
) -> None:
    """Raise :class:`ChecksumMismatchError` unless the staged bytes are what the source stated."""
    problems = []
    if remote.size is not None and size != remote.size:
        problems.append(f"size {size} instead of {remote.size}")
    if remote.sha256 is not None and sha256 != remote.sha256:
        problems.append(f"SHA256 {sha256} instead of {remote.sha256}")
    if remote.git_blob_id is not None and git_blob_id != remote.git_blob_id:
        problems.append(f"git blob id {git_blob_id} instead of {remote.git_blob_id}")
    if problems:
        raise ChecksumMismatchError(
            f"{ref}: file '{path}' arrived corrupted ({'; '.join(problems)}); it was not stored "
            "and raw/ is unchanged. Retry; if it persists, the upstream copy is damaged."
        )


def _merge(new: Provenance, previous: Provenance | None, dest: Path) -> Provenance:
    """``new`` plus the still-present records of ``previous`` when both describe one snapshot.

    Kept records are checked by size only: re-hashing every other split's files on each fetch
    would cost a full read of the dataset; ``verify_raw`` is where their bytes are proven.
    """
    if previous is None or not previous.same_snapshot(new):
        return new
    paths = {record.path for record in new.files}
    kept = [
        record
        for record in previous.files
        if record.path not in paths and record_present(dest, record)
    ]
    files = sorted([*new.files, *kept], key=lambda record: record.path)
    return new.model_copy(update={"files": files})


def _remove_unlisted(dest: Path, previous: Provenance, current: Provenance) -> None:
    """Delete files only an older snapshot's record listed, so raw/ holds one snapshot."""
    keep = {record.path for record in current.files}
    for record in previous.files:
        if record.path in keep:
            continue
        with contextlib.suppress(UnsafePathError, FileNotFoundError):
            checked_repo_path(dest, record.path).unlink()
