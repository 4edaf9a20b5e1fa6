"""The contract every upstream source meets, and the machinery they share to fill ``raw/``.

A source copies the files of one repo revision that match some fnmatch patterns into an
artifact's ``raw/`` folder and writes ``raw/SOURCE.json`` (a :class:`Provenance`) describing
exactly what is there. Guarantees, for every implementation:

* Nothing half-written ever appears in ``raw/``. Bytes land in a staging folder beside it
  (``.raw.incoming``, same filesystem), are verified, fsynced, then renamed into place;
  ``SOURCE.json`` is written last, atomically.
* ``SOURCE.json`` present means every file it lists is on disk, complete, with that SHA256. When a
  fetch is about to replace a file the current ``SOURCE.json`` vouches for, that ``SOURCE.json``
  is removed first, so a crash in the middle of the renames leaves no false record behind.
* On any error a :class:`SourceError` naming the repo and the file (or pattern) is raised and
  ``raw/`` keeps its previous complete content.
* Reruns are cheap: a file whose recorded SHA256 (or, for unversioned mirrors, size and mtime)
  still matches what the source reports is reused without being transferred or re-hashed.
* Several fetches may share one ``raw/`` (one dataset, one fetch per split): when the previous
  ``SOURCE.json`` describes the same repo snapshot, its other records are kept (merged); when it
  describes another snapshot, the files only it listed are deleted after the new record is
  written, so ``raw/`` never mixes snapshots.

Callers serialise fetches into one ``raw/`` (``wmtp_assets.files.lock.artifact_lock``): the
staging folder has a fixed name and is wiped at the start of every fetch.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError

from wmtp_assets.files.atomic import atomic_write_json, fsync_dir, sweep_stale_tmp
from wmtp_assets.files.hashing import CHUNK, sha256_file
from wmtp_assets.files.layout import UnsafePathError, safe_join

SOURCE_FILE = "SOURCE.json"

RepoType = Literal["model", "dataset"]
Progress = Callable[[str], None]


class SourceError(RuntimeError):
    """Upstream files could not be fetched; the message names the repo and the file or pattern."""


class SourceFileMissingError(SourceError):
    """The repo, revision, file or pattern does not exist upstream."""


class ChecksumMismatchError(SourceError):
    """Bytes received differ from what the source advertises (Hub hash or mirror manifest)."""


class SourceAuthError(SourceError):
    """A gated or private repo was asked for without a (valid) token."""


class SourceUnreachableError(SourceError):
    """The source cannot be reached (network, offline mode) and the file is not held locally."""


class FileRecord(BaseModel):
    """One file of ``raw/``: its path in the repo, its size and the SHA256 of its bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    size: int
    sha256: str


class Provenance(BaseModel):
    """The content of ``raw/SOURCE.json``: where the bytes of ``raw/`` came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["hub", "mirror"]
    location: str
    repo_id: str
    repo_type: RepoType
    requested_revision: str
    resolved_commit: str | None
    files: list[FileRecord]
    fetched_at: str

    def same_snapshot(self, other: Provenance) -> bool:
        """Whether both describe the same upstream snapshot, so their records can be merged."""
        return (self.kind, self.location, self.repo_id, self.repo_type, self.resolved_commit) == (
            other.kind,
            other.location,
            other.repo_id,
            other.repo_type,
            other.resolved_commit,
        )


@dataclass(frozen=True)
class FetchResult:
    """What one fetch delivered.

    ``files`` maps each repo path this fetch asked for to its file in ``raw/``; ``provenance`` is
    what ``SOURCE.json`` now says (it may list more files, kept from earlier fetches of the same
    snapshot); ``reused`` names the files that were already in ``raw/`` and were not transferred.
    """

    files: dict[str, Path]
    provenance: Provenance
    reused: tuple[str, ...]


class Source(ABC):
    """Fetches upstream repo files into an artifact's ``raw/`` folder (see the module contract)."""

    @abstractmethod
    def fetch(
        self,
        repo_id: str,
        repo_type: RepoType,
        revision: str,
        patterns: Sequence[str],
        dest: Path,
        progress: Progress | None = None,
    ) -> FetchResult:
        """Make ``dest`` hold the files of ``repo_id`` at ``revision`` that match ``patterns``.

        Every pattern (fnmatch syntax over repo paths) must match at least one file, else
        :class:`SourceFileMissingError`. ``progress`` receives human-readable messages (bytes
        done, rate) while files are transferred.
        """


class RemoteFile(NamedTuple):
    """What a source states about one file before transfer: the facts its bytes must meet.

    ``sha256`` and ``git_blob_id`` (git's sha1 of ``b"blob <size>\\0" + content``) are checked
    when known; ``mtime_ns`` only serves to recognise an unchanged file of an unversioned mirror.
    """

    size: int | None
    sha256: str | None = None
    git_blob_id: str | None = None
    mtime_ns: int | None = None


class Digests(NamedTuple):
    """Hashes of bytes that were transferred; ``git_blob_id`` only when it was asked for."""

    sha256: str
    git_blob_id: str | None = None


Transfer = Callable[[str, Path], Digests]
"""Write the repo file ``path`` to ``staging_dir / path`` and return the digests of its bytes."""


def describe(repo_type: str, repo_id: str, revision: str) -> str:
    """The repo as error messages name it."""
    return f"{repo_type} repo '{repo_id}' at revision '{revision}'"


def read_provenance(raw_dir: Path) -> Provenance | None:
    """The ``SOURCE.json`` of ``raw_dir``, or None when there is none.

    Raises :class:`SourceError` when the file exists but is not a valid record.
    """
    path = Path(raw_dir) / SOURCE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return Provenance.model_validate_json(text)
    except ValidationError as exc:
        raise SourceError(f"{path} is not a valid provenance record: {exc}") from exc


def checked_repo_path(dest: Path, path: str) -> Path:
    """``dest / path`` for a repo path from upstream, refusing anything that could leave ``dest``.

    Stricter than ``safe_join`` alone: ``..``, ``.`` and empty segments are refused outright.
    """
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise UnsafePathError(f"refusing repo path {path!r}: empty, '.' or '..' segments")
    return safe_join(dest, path)


def select_files(
    available: Mapping[str, RemoteFile],
    patterns: Sequence[str],
    *,
    repo: str,
    dest: Path,
) -> list[str]:
    """The repo paths matching ``patterns``, sorted; each pattern must match, each path be safe."""
    if not patterns:
        raise ValueError(f"{repo}: at least one file pattern is needed")
    selected: set[str] = set()
    for pattern in patterns:
        matches = [path for path in available if fnmatch.fnmatchcase(path, pattern)]
        if not matches:
            sample = ", ".join(sorted(available)[:10]) or "no files"
            raise SourceFileMissingError(
                f"{repo}: no file matches pattern '{pattern}' (the repo has: {sample}"
                f"{', ...' if len(available) > 10 else ''})"
            )
        selected.update(matches)
    for path in selected:
        try:
            checked_repo_path(dest, path)
        except UnsafePathError as exc:
            raise SourceError(f"{repo}: upstream file '{path}' is unsafe: {exc}") from exc
    return sorted(selected)


def record_present(dest: Path, record: FileRecord) -> bool:
    """Whether the file ``record`` lists is in ``dest`` with the recorded size."""
    try:
        target = checked_repo_path(dest, record.path)
    except UnsafePathError:
        return False
    return target.is_file() and target.stat().st_size == record.size


def git_blob_sha1(path: Path) -> str:
    """Git's object id of a file: sha1 of ``b"blob <size>\\0"`` followed by its bytes."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def format_bytes(size: float) -> str:
    """``1.5 GiB``-style sizes for progress messages."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    index = 0
    while abs(size) >= 1024 and index < len(units) - 1:
        size /= 1024
        index += 1
    return f"{size:.0f} B" if index == 0 else f"{size:.1f} {units[index]}"


class ProgressMeter:
    """Turns a stream of byte counts into a progress message every ``interval_s`` and at the end."""

    def __init__(
        self, progress: Progress, label: str, total: int | None, interval_s: float = 5.0
    ) -> None:
        self._progress = progress
        self._label = label
        self._total = total
        self._interval_s = interval_s
        self._done = 0
        self._started = time.monotonic()
        self._last_report = self._started
        self._finished = False

    def advance(self, n: int) -> None:
        """Count ``n`` more bytes (negative when a download restarts from scratch)."""
        self._done += n
        now = time.monotonic()
        if now - self._last_report >= self._interval_s:
            self._last_report = now
            self._report(now)

    def finish(self) -> None:
        """Report the final count and the mean rate, once."""
        if not self._finished:
            self._finished = True
            self._report(time.monotonic())

    def _report(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-6)
        of_total = f" of {format_bytes(self._total)}" if self._total is not None else ""
        self._progress(
            f"{self._label}: {format_bytes(self._done)}{of_total}"
            f" ({format_bytes(self._done / elapsed)}/s)"
        )


def copy_and_hash(
    src: Path, dst: Path, *, git_blob: bool = False, meter: ProgressMeter | None = None
) -> Digests:
    """Copy ``src`` to ``dst`` in one read pass, hashing each chunk as it is written; fsync ``dst``.

    The source's mtime is kept on ``dst`` so an unversioned mirror file can later be recognised
    as unchanged.
    """
    sha256 = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        stat = os.fstat(fin.fileno())
        sha1 = (
            hashlib.sha1(f"blob {stat.st_size}\0".encode(), usedforsecurity=False)
            if git_blob
            else None
        )
        while chunk := fin.read(CHUNK):
            sha256.update(chunk)
            if sha1 is not None:
                sha1.update(chunk)
            fout.write(chunk)
            if meter is not None:
                meter.advance(len(chunk))
        fout.flush()
        os.fsync(fout.fileno())
    os.utime(dst, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    if meter is not None:
        meter.finish()
    return Digests(sha256.hexdigest(), sha1.hexdigest() if sha1 is not None else None)


def fetch_into_raw(
    *,
    dest: Path,
    kind: Literal["hub", "mirror"],
    location: str,
    repo_id: str,
    repo_type: RepoType,
    revision: str,
    resolved_commit: str | None,
    listing: Mapping[str, RemoteFile],
    patterns: Sequence[str],
    transfer: Transfer,
    progress: Progress | None,
) -> FetchResult:
    """Select, transfer, verify and install files into ``dest`` under the module's contract.

    ``listing`` is every file of the repo snapshot with what the source states about it;
    ``transfer`` puts one file's bytes into the staging folder.
    """
    dest = Path(dest)
    repo = describe(repo_type, repo_id, revision)
    selected = select_files(listing, patterns, repo=repo, dest=dest)
    previous = _previous_provenance(dest, progress)
    previous_records = {record.path: record for record in previous.files} if previous else {}
    records: list[FileRecord] = []
    reused: list[str] = []
    with _Staging(dest) as staging:
        for path in selected:
            remote = listing[path]
            record = previous_records.get(path)
            if record is not None and (kept := _reusable(record, remote, dest / path)):
                records.append(kept)
                reused.append(path)
                _say(progress, f"{path}: unchanged since the last fetch, reused")
                continue
            staged = staging.root / path
            try:
                digests = transfer(path, staging.root)
                size = staged.stat().st_size
            except OSError as exc:  # local disk trouble; network errors arrive as SourceError
                raise SourceError(f"{repo}: file '{path}' could not be staged: {exc}") from exc
            _verify(repo, path, remote, size, digests)
            records.append(FileRecord(path=path, size=size, sha256=digests.sha256))
            staging.add(path)
        provenance = Provenance(
            kind=kind,
            location=location,
            repo_id=repo_id,
            repo_type=repo_type,
            requested_revision=revision,
            resolved_commit=resolved_commit,
            files=records,
            fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        try:
            written = staging.commit(provenance, previous)
        except OSError as exc:
            raise SourceError(
                f"{repo}: installing the fetched files into {dest} failed: {exc}"
            ) from exc
    return FetchResult(
        files={path: dest / path for path in selected}, provenance=written, reused=tuple(reused)
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


def _reusable(record: FileRecord, remote: RemoteFile, local: Path) -> FileRecord | None:
    """The record of ``local`` if it already holds the bytes ``remote`` describes, else None.

    Large (LFS, manifest) files are judged by the recorded SHA256 without reading them; small
    git-stored files are re-hashed, which is cheap and keeps their record exact.
    """
    try:
        stat = local.stat()
    except FileNotFoundError:
        return None
    if stat.st_size != record.size or remote.size not in (None, record.size):
        return None
    if remote.sha256 is not None:
        return record if remote.sha256 == record.sha256 else None
    if remote.git_blob_id is not None:
        digests = file_digests(local, git_blob=True)
        if digests.git_blob_id != remote.git_blob_id:
            return None
        return FileRecord(path=record.path, size=record.size, sha256=digests.sha256)
    return record if remote.mtime_ns is not None and remote.mtime_ns == stat.st_mtime_ns else None


def _verify(repo: str, path: str, remote: RemoteFile, size: int, digests: Digests) -> None:
    """Raise :class:`ChecksumMismatchError` unless the staged bytes are what the source stated."""
    problems = []
    if remote.size is not None and size != remote.size:
        problems.append(f"size {size} instead of {remote.size}")
    if remote.sha256 is not None and digests.sha256 != remote.sha256:
        problems.append(f"SHA256 {digests.sha256} instead of {remote.sha256}")
    if remote.git_blob_id is not None and digests.git_blob_id != remote.git_blob_id:
        problems.append(f"git blob id {digests.git_blob_id} instead of {remote.git_blob_id}")
    if problems:
        raise ChecksumMismatchError(
            f"{repo}: file '{path}' arrived corrupted ({'; '.join(problems)}); it was not stored "
            "and raw/ is unchanged. Retry; if it persists, the upstream copy is damaged."
        )


class _Staging:
    """The staging folder beside ``raw/`` and the ordered install of its files into ``raw/``."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.root = dest.parent / f".{dest.name}.incoming"
        self._staged: list[str] = []

    def __enter__(self) -> _Staging:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def add(self, path: str) -> None:
        """Mark the verified file ``root / path`` for installation."""
        self._staged.append(path)

    def commit(self, provenance: Provenance, previous: Provenance | None) -> Provenance:
        """Install the staged files, then the record; return the record as written."""
        merged = _merge(provenance, previous, self.dest)
        self.dest.mkdir(parents=True, exist_ok=True)
        sweep_stale_tmp(self.dest)
        record_path = self.dest / SOURCE_FILE
        vouched = {record.path for record in previous.files} if previous else set()
        if vouched.intersection(self._staged):
            record_path.unlink(missing_ok=True)
            fsync_dir(self.dest)
        for path in self._staged:
            staged = self.root / path
            with open(staged, "rb") as fh:  # bytes from a downloader may not be on disk yet
                os.fsync(fh.fileno())
            target = checked_repo_path(self.dest, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
            fsync_dir(target.parent)
        atomic_write_json(record_path, merged.model_dump(mode="json"))
        if previous is not None and not previous.same_snapshot(provenance):
            self._remove_unlisted(previous, merged)
        return merged

    def _remove_unlisted(self, previous: Provenance, current: Provenance) -> None:
        """Delete files only an older snapshot's record listed, so raw/ holds one snapshot."""
        keep = {record.path for record in current.files}
        for record in previous.files:
            if record.path in keep:
                continue
            with contextlib.suppress(UnsafePathError, FileNotFoundError):
                checked_repo_path(self.dest, record.path).unlink()


def _merge(new: Provenance, previous: Provenance | None, dest: Path) -> Provenance:
    """``new`` plus the still-present records of ``previous`` when both describe one snapshot."""
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


def file_digests(path: Path, *, git_blob: bool) -> Digests:
    """Digests of a file already on disk (a downloader wrote it without hashing)."""
    return Digests(sha256_file(path), git_blob_sha1(path) if git_blob else None)
