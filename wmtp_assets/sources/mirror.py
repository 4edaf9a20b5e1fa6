"""Upstream files from a local mirror folder (air-gapped nodes, the demo, tests).

Layout (ARCHITECTURE §2): ``$WMTP_MIRROR/<models|datasets>/<org>/<name>/<path in repo>``.

A repo folder may carry a manifest, ``.wmtp_mirror.json``::

    {"revision": "main", "commit": "<sha>", "files": {"<path>": {"sha256": "...", "size": 123}}}

With a manifest the mirror behaves like a pinned Hub snapshot: the manifest is the file list, the
requested revision must be its ``revision`` or ``commit``, copied bytes are verified against it
and ``resolved_commit`` is its ``commit``. Without one, every file under the folder is offered,
nothing can be verified (the SHA256 is only recorded) and ``resolved_commit`` is None; a file is
then recognised as unchanged on rerun by its size and mtime, which the copy in ``raw/`` keeps.

A file of the repo folder that is a symlink, or that resolves outside the folder, is refused:
the mirror is upstream data and must not make a fetch read whatever the link points at. (The
repo folder itself may be a link, e.g. onto another disk.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from wmtp_assets.files.atomic import atomic_write_json
from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.sources.contract import FetchResult, RepoRef, Source
from wmtp_assets.sources.errors import SourceError, SourceFileMissingError
from wmtp_assets.sources.install import RemoteFile, Snapshot, install_snapshot
from wmtp_assets.sources.progress import Progress, ProgressMeter
from wmtp_assets.sources.transfer import Digests, copy_and_hash

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


def mirror_repo_dir(root: Path, ref: RepoRef) -> Path:
    """The mirror folder of a repo; ``ref.repo_id`` must be a plain ``org/name``."""
    if not _REPO_ID.fullmatch(ref.repo_id) or ".." in ref.repo_id:
        raise SourceError(f"{ref.repo_type} repo id {ref.repo_id!r} is not of the form 'org/name'")
    return Path(root) / _REPO_FOLDERS[ref.repo_type] / ref.repo_id


def write_mirror_manifest(root: Path, ref: RepoRef, commit: str) -> Path:
    """Hash every file of ``ref``'s folder under the mirror ``root`` and write its manifest.

    The manifest states ``ref.revision`` and ``commit``; returns the manifest's path.
    """
    repo_dir = mirror_repo_dir(root, ref)
    files: dict[str, ManifestEntry] = {}
    for rel, path in _repo_files(repo_dir):
        _mirror_file(repo_dir, rel, ref)  # a link would make the manifest vouch for its target
        files[rel] = ManifestEntry(sha256=sha256_file(path), size=path.stat().st_size)
    manifest = MirrorManifest(revision=ref.revision, commit=commit, files=files)
    return atomic_write_json(repo_dir / MANIFEST_NAME, manifest.model_dump(mode="json"))


class MirrorSource(Source):
    """Copies files from a mirror folder, hashing them on the fly, into ``raw/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _fetch(self, ref: RepoRef, dest: Path, progress: Progress | None) -> FetchResult:
        repo_dir = mirror_repo_dir(self.root, ref)
        if not repo_dir.is_dir():
            raise SourceFileMissingError(f"{ref}: the mirror has no folder {repo_dir}")
        manifest = _read_manifest(repo_dir, ref)
        if manifest is None:
            resolved_commit = None
            listing = _listing_from_disk(repo_dir)
        else:
            resolved_commit = manifest.commit
            if ref.revision not in (manifest.revision, manifest.commit):
                raise SourceFileMissingError(
                    f"{ref}: the mirror folder {repo_dir} holds revision '{manifest.revision}'"
                    f" (commit {manifest.commit}), not the one requested"
                )
            listing = {
                path: RemoteFile(size=entry.size, sha256=entry.sha256)
                for path, entry in manifest.files.items()
            }

        def transfer(path: str, target: Path) -> Digests:
            source = _mirror_file(repo_dir, path, ref)
            meter = ProgressMeter(progress, path, listing[path].size) if progress else None
            return copy_and_hash(source, target, meter=meter)

        location = str(self.root.resolve())
        snapshot = Snapshot("mirror", location, resolved_commit, listing)
        return install_snapshot(ref, snapshot, transfer, dest, progress)


def _mirror_file(repo_dir: Path, path: str, ref: RepoRef) -> Path:
    """The mirror's copy of ``path`` (checked by ``select_files``): a regular file inside the
    repo folder, else a one-line :class:`SourceError` naming it."""
    source = repo_dir / path
    if source.is_symlink():
        raise SourceError(
            f"{ref}: mirror file {source} is a symlink (to {source.readlink()}); refusing to"
            " follow it, copy the file into the mirror instead"
        )
    if not source.is_file():
        raise SourceFileMissingError(
            f"{ref}: file '{path}' is in {MANIFEST_NAME} but missing from the mirror"
        )
    base = repo_dir.resolve()
    if base not in source.resolve().parents:
        raise SourceError(
            f"{ref}: mirror file {source} resolves to {source.resolve()}, outside {repo_dir};"
            " refusing to follow it"
        )
    return source


def _read_manifest(repo_dir: Path, ref: RepoRef) -> MirrorManifest | None:
    path = repo_dir / MANIFEST_NAME
    try:
        return MirrorManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValidationError as exc:
        raise SourceError(f"{ref}: {path} is not a valid mirror manifest: {exc}") from exc


def _listing_from_disk(repo_dir: Path) -> dict[str, RemoteFile]:
    listing: dict[str, RemoteFile] = {}
    for rel, path in _repo_files(repo_dir):
        stat = path.lstat()  # a symlink is listed, then refused by name if a fetch selects it
        listing[rel] = RemoteFile(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    return listing


def _repo_files(repo_dir: Path) -> Iterator[tuple[str, Path]]:
    """``(repo path, file)`` of every file under ``repo_dir`` but the manifest, sorted.

    Symlinks are listed like files, so that a fetch asking for one refuses it by name.
    """
    for path in sorted(repo_dir.rglob("*")):
        if (path.is_file() or path.is_symlink()) and path.name != MANIFEST_NAME:
            yield path.relative_to(repo_dir).as_posix(), path
