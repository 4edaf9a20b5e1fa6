"""``raw/SOURCE.json``: where the bytes of a ``raw/`` folder came from, and proof they still are.

A :class:`Provenance` lists every file of ``raw/`` with its size and SHA256. Its presence means
each listed file was on disk, complete, with that SHA256 when it was written; disks rot, so
:func:`verify_raw` re-hashes the bytes against it (a pure check, for an asset check on the raw
assets to wrap). The record is exact both ways: a file in ``raw/`` that it does not list (a shard
nobody fetched, put beside the fetched ones) is a finding too, and :func:`listed_files` refuses
such a folder before anything reads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from wmtp_assets.files.atomic import TMP_MARK
from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.files.layout import UnsafePathError, safe_join
from wmtp_assets.sources.errors import SourceError

SOURCE_FILE = "SOURCE.json"

RepoType = Literal["model", "dataset"]


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
        """Whether both describe the same upstream snapshot, so their records can be merged.

        A resolved commit names the bytes wherever they were served from: the same repo at the
        same commit from another mirror path (a storage root moved or copied with the mirror
        inside it) or from the Hub is the same snapshot, so a fetch of one split keeps the
        others' files. Without a commit only the same folder or endpoint is the same snapshot.
        """
        if (self.repo_id, self.repo_type) != (other.repo_id, other.repo_type):
            return False
        if self.resolved_commit is not None or other.resolved_commit is not None:
            return self.resolved_commit == other.resolved_commit
        return (self.kind, self.location) == (other.kind, other.location)


class RawFinding(BaseModel):
    """One file of ``raw/`` that is not what ``SOURCE.json`` says.

    ``found_sha256`` None: the file is absent; ``expected_sha256`` None: the record itself is,
    or (``unlisted``) the file is in ``raw/`` but the record does not list it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    expected_sha256: str | None
    found_sha256: str | None
    message: str
    unlisted: bool = False


class RawSetError(ValueError):
    """``raw/`` is not exactly what its ``SOURCE.json`` lists; the message names the file."""

    def __init__(self, message: str, file: Path) -> None:
        super().__init__(message)
        self.file = str(file)


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


def record_present(raw_dir: Path, record: FileRecord) -> bool:
    """Whether the file ``record`` lists is in ``raw_dir`` with the recorded size (no hashing)."""
    try:
        target = checked_repo_path(raw_dir, record.path)
    except UnsafePathError:
        return False
    return target.is_file() and target.stat().st_size == record.size


def check_record(raw_dir: Path, record: FileRecord) -> RawFinding | None:
    """Re-hash the file ``record`` lists; a finding when it is absent or its bytes differ."""
    try:
        target = checked_repo_path(raw_dir, record.path)
    except UnsafePathError as exc:
        return RawFinding(
            file=record.path, expected_sha256=record.sha256, found_sha256=None, message=str(exc)
        )
    if not target.is_file():
        return RawFinding(
            file=str(target),
            expected_sha256=record.sha256,
            found_sha256=None,
            message=f"{target}: listed in {SOURCE_FILE} but missing",
        )
    found = sha256_file(target)
    if found == record.sha256:
        return None
    return RawFinding(
        file=str(target),
        expected_sha256=record.sha256,
        found_sha256=found,
        message=f"{target}: SHA256 {found} != {SOURCE_FILE} {record.sha256}",
    )


def unlisted_files(
    raw_dir: Path, provenance: Provenance, claimed: Callable[[str], bool] | None = None
) -> list[Path]:
    """Files (or links) in ``raw_dir`` that ``provenance`` does not list, among those whose repo
    path ``claimed`` accepts (all when None), sorted; ``SOURCE.json`` itself and a writer's
    temporaries (``.<name>.tmp-*``, never mistaken for data) aside. Symlinked folders are not
    entered: the link itself is reported."""
    listed = {record.path for record in provenance.files}
    found: list[Path] = []
    for folder, subfolders, names in os.walk(raw_dir):
        base = Path(folder)
        links = [d for d in subfolders if (base / d).is_symlink()]
        for name in [*names, *links]:
            path = base / name
            rel = path.relative_to(raw_dir).as_posix()
            if rel == SOURCE_FILE or (name.startswith(".") and TMP_MARK in name):
                continue
            if rel not in listed and (claimed is None or claimed(rel)):
                found.append(path)
    return sorted(found)


def listed_files(
    raw_dir: Path, wanted: Callable[[str], bool], claimed: Callable[[str], bool]
) -> dict[Path, str]:
    """``{file: recorded SHA256}`` of the files ``raw_dir/SOURCE.json`` lists whose repo path
    ``wanted`` accepts, when the folder holds exactly those: each present with its recorded size
    and no file that ``claimed`` accepts unlisted. What a reader of ``raw/`` calls before reading
    it (then hashing what it reads against these hashes); the bytes are not read here.

    Raises :class:`RawSetError` naming the record (missing, invalid, listing nothing wanted) or
    the first file missing, of another size, or present but unlisted.
    """
    record_file = Path(raw_dir) / SOURCE_FILE
    try:
        provenance = read_provenance(raw_dir)
    except SourceError as exc:
        raise RawSetError(str(exc).splitlines()[0], record_file) from None
    if provenance is None:
        raise RawSetError(f"{record_file}: missing, nothing vouches for raw/", record_file)
    records = [record for record in provenance.files if wanted(record.path)]
    if not records:
        raise RawSetError(f"{record_file}: lists none of the files asked for", record_file)
    for record in records:
        if not record_present(raw_dir, record):
            target = Path(raw_dir) / record.path
            raise RawSetError(
                f"{target}: listed in {SOURCE_FILE} ({record.size} bytes) but missing or of "
                "another size",
                target,
            )
    strays = unlisted_files(raw_dir, provenance, claimed)
    if strays:
        raise RawSetError(_unlisted_message(strays[0], len(strays)), strays[0])
    return {checked_repo_path(raw_dir, record.path): record.sha256 for record in records}


def verify_raw(
    raw_dir: Path,
    wanted: Callable[[str], bool] | None = None,
    claimed: Callable[[str], bool] | None = None,
) -> list[RawFinding]:
    """Every file ``raw_dir/SOURCE.json`` lists (or those whose repo path ``wanted`` accepts),
    re-hashed, then every file of the folder it does not list (among those ``claimed`` accepts;
    default: those ``wanted`` accepts); empty when the folder is exactly as recorded.

    A missing or unreadable ``SOURCE.json`` is itself a finding: nothing vouches for ``raw/``.
    """
    record_file = Path(raw_dir) / SOURCE_FILE
    try:
        provenance = read_provenance(raw_dir)
    except SourceError as exc:
        return [_record_finding(record_file, str(exc).splitlines()[0])]
    if provenance is None:
        return [_record_finding(record_file, f"{record_file}: missing, nothing vouches for raw/")]
    records = [r for r in provenance.files if wanted is None or wanted(r.path)]
    findings = [f for record in records if (f := check_record(Path(raw_dir), record))]
    strays = unlisted_files(Path(raw_dir), provenance, claimed or wanted)
    return findings + [
        RawFinding(
            file=str(path),
            expected_sha256=None,
            found_sha256=None,
            message=_unlisted_message(path, len(strays)),
            unlisted=True,
        )
        for path in strays
    ]


def _unlisted_message(path: Path, count: int) -> str:
    more = f" (and {count - 1} more)" if count > 1 else ""
    return (
        f"{path}: in raw/ but not listed in {SOURCE_FILE}{more}; nothing fetched it. Remove it, "
        "or fetch the split again"
    )


def _record_finding(record_file: Path, message: str) -> RawFinding:
    return RawFinding(
        file=str(record_file), expected_sha256=None, found_sha256=None, message=message
    )
