"""Upstream files from a local mirror folder (air-gapped nodes, the demo, tests).

Layout (ARCHITECTURE §2): ``$WMTP_MIRROR/<models|datasets>/<org>/<name>/<path in repo>``.

A repo folder may carry a manifest, ``.wmtp_mirror.json``::

    {"revision": "main", "commit": "<sha>", "files": {"<path>": {"sha256": "...", "size": 123}}}

With a manifest the mirror behaves like a pinned Hub snapshot: the manifest is the file list, the
requested revision must be its ``revision`` or ``commit``, copied bytes are verified against it
and ``resolved_commit`` is its ``commit``. Without one, every file under the folder is offered,
nothing can be verified (the SHA256 is only recorded) and ``resolved_commit`` is None; a file is
then recognised as unchanged on rerun by its size and mtime, which the copy in ``raw/`` keeps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from wmtp_assets.files.atomic import atomic_write_json
from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.sources.base import (
    Digests,
    FetchResult,
    Progress,
    ProgressMeter,
    RemoteFile,
    RepoType,
    Source,
    SourceError,
    SourceFileMissingError,
    copy_and_hash,
    describe,
    fetch_into_raw,
)

MANIFEST_NAME = ".wmtp_mirror.json"
_REPO_FOLDERS: dict[str, str] = {"model": "models", "dataset": "datasets"}
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


class ManifestEntry(BaseModel):
    """What the mirror's manifest states about one file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str
    size: int


class MirrorManifest(BaseModel):
    """The content of ``.wmtp_mirror.json``: which snapshot a mirror folder holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    revision: str
    commit: str
    files: dict[str, ManifestEntry]


def mirror_repo_dir(root: Path, repo_id: str, repo_type: RepoType) -> Path:
    """The mirror folder of a repo; ``repo_id`` must be a plain ``org/name``."""
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise SourceError(f"{repo_type} repo id {repo_id!r} is not of the form 'org/name'")
    return Path(root) / _REPO_FOLDERS[repo_type] / repo_id


def write_mirror_manifest(repo_dir: Path, revision: str, commit: str) -> Path:
    """Hash every file under ``repo_dir`` and write its manifest; return the manifest's path."""
    repo_dir = Path(repo_dir)
    files = {
        path.relative_to(repo_dir).as_posix(): ManifestEntry(
            sha256=sha256_file(path), size=path.stat().st_size
        )
        for path in sorted(repo_dir.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME
    }
    manifest = MirrorManifest(revision=revision, commit=commit, files=files)
    return atomic_write_json(repo_dir / MANIFEST_NAME, manifest.model_dump(mode="json"))


class MirrorSource(Source):
    """Copies files from a mirror folder, hashing them on the fly, into ``raw/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def fetch(
        self,
        repo_id: str,
        repo_type: RepoType,
        revision: str,
        patterns: Sequence[str],
        dest: Path,
        progress: Progress | None = None,
    ) -> FetchResult:
        repo = describe(repo_type, repo_id, revision)
        repo_dir = mirror_repo_dir(self.root, repo_id, repo_type)
        if not repo_dir.is_dir():
            raise SourceFileMissingError(f"{repo}: the mirror has no folder {repo_dir}")
        manifest = _read_manifest(repo_dir, repo)
        if manifest is None:
            resolved_commit = None
            listing = _listing_from_disk(repo_dir)
        else:
            resolved_commit = manifest.commit
            if revision not in (manifest.revision, manifest.commit):
                raise SourceFileMissingError(
                    f"{repo}: the mirror folder {repo_dir} holds revision '{manifest.revision}'"
                    f" (commit {manifest.commit}), not the one requested"
                )
            listing = {
                path: RemoteFile(size=entry.size, sha256=entry.sha256)
                for path, entry in manifest.files.items()
            }

        def transfer(path: str, staging_dir: Path) -> Digests:
            source = repo_dir / path  # `path` was checked by select_files
            if not source.is_file():
                raise SourceFileMissingError(
                    f"{repo}: file '{path}' is in {MANIFEST_NAME} but missing from the mirror"
                )
            target = staging_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            meter = ProgressMeter(progress, path, listing[path].size) if progress else None
            return copy_and_hash(source, target, meter=meter)

        return fetch_into_raw(
            dest=dest,
            kind="mirror",
            location=str(self.root.resolve()),
            repo_id=repo_id,
            repo_type=repo_type,
            revision=revision,
            resolved_commit=resolved_commit,
            listing=listing,
            patterns=patterns,
            transfer=transfer,
            progress=progress,
        )


def _read_manifest(repo_dir: Path, repo: str) -> MirrorManifest | None:
    path = repo_dir / MANIFEST_NAME
    try:
        return MirrorManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValidationError as exc:
        raise SourceError(f"{repo}: {path} is not a valid mirror manifest: {exc}") from exc


def _listing_from_disk(repo_dir: Path) -> dict[str, RemoteFile]:
    listing: dict[str, RemoteFile] = {}
    for path in sorted(repo_dir.rglob("*")):
        if path.is_file() and path.name != MANIFEST_NAME:
            stat = path.stat()
            listing[path.relative_to(repo_dir).as_posix()] = RemoteFile(
                size=stat.st_size, mtime_ns=stat.st_mtime_ns
            )
    return listing
