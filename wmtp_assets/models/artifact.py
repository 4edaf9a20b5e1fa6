"""What every model artifact carries besides its weights, and how it becomes visible: at once.

Design (all-or-nothing publishing): ``safetensors/SHA256SUMS`` is the artifact's seal. It lists
*every* file of the artifact (weights, configs, tokenizer files, ``metadata.json``; names
relative to ``safetensors/``, so ``../metadata.json``; the weights' line first, the rest by
name), and it is the last file renamed into place. A publish (:class:`ArtifactStaging`) first
writes every new file completely to a temporary sibling (``.<name>.tmp-*``) and fsyncs it, then
deletes the old ``SHA256SUMS`` and ``metadata.json``, renames the new files over the old ones
and renames ``SHA256SUMS`` last. So
at any byte a crash, SIGKILL or full disk leaves either the previous complete artifact (nothing
was renamed yet) or a folder without ``SHA256SUMS``, which ``sha256sum -c`` and the
``sha256_matches`` check refuse; the next run sweeps the temporaries and publishes again.

Why a seal and not a swap of the whole folder: the model folder is shared by several assets
(``raw/`` is the raw asset's, Meta's ``tokenizer/`` the tokenizer asset's) and the trainer's
path is a link to the folder itself, so the folder cannot be replaced by a staged sibling; one
file renamed last gives the same guarantee to ``sha256sum -c`` and to every check.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wmtp_assets.files.atomic import json_bytes, sweep_stale_tmp, sweep_tmp_of
from wmtp_assets.files.hashing import sha256_file, sha256sums_bytes
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.files.staging import Staging
from wmtp_assets.sources import Provenance

METADATA_VERSION = "v2.0.0"


class SourceInfo(BaseModel):
    """Where the weights came from (copied from the raw folder's ``SOURCE.json``)."""

    model_config = ConfigDict(extra="forbid")

    architecture: str
    repo: str | None = None
    kind: Literal["hub", "mirror", "generated"]
    requested_revision: str | None = None
    resolved_commit: str | None = None
    files: dict[str, str] = Field(default_factory=dict, description="raw path -> SHA256")


class TokenizerInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str
    vocab_size: int
    shared_with_sha256: str | None = Field(
        default=None, description="SHA256 of the tokenizer of `tokenizer_shared_with`"
    )


class ModelMetadata(BaseModel):
    """``metadata.json``: the plan's fields, each holding what is actually stored."""

    model_config = ConfigDict(extra="forbid")

    model_name: str
    version: str = METADATA_VERSION
    implementation: Literal["pure_pytorch", "hf_llama"]
    n_params: int
    format: Literal["safetensors"] = "safetensors"
    dtype: str = Field(description="dtype read back from the safetensors header")
    source: SourceInfo
    safetensors: dict[str, Any] = Field(default_factory=dict)
    distributed: dict[str, Any] = Field(default_factory=dict)
    tokenizer: TokenizerInfo
    tokenizer_shared_with: str | None = None
    target_device: str | None = None
    files: dict[str, str] = Field(description="path relative to the model folder -> SHA256")
    size_bytes: dict[str, int] = Field(description="path relative to the model folder -> size")
    code_version: str
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())


def provenance_fields(provenance: Provenance) -> dict[str, Any]:
    """What ``raw/SOURCE.json`` says, as ``SourceInfo`` fields (all but the architecture)."""
    return {
        "repo": f"{provenance.repo_type}s/{provenance.repo_id}",
        "kind": provenance.kind,
        "requested_revision": provenance.requested_revision,
        "resolved_commit": provenance.resolved_commit,
        "files": {r.path: r.sha256 for r in provenance.files},
    }


WEIGHTS = "safetensors/model.safetensors"
METADATA = "metadata.json"
SEAL_FOLDER = "safetensors"
"""``SHA256SUMS`` lives in, and names files relative to, this folder (the storage contract)."""
_SCRATCH = "staging"


def seal_name(rel: str) -> str:
    """How ``SHA256SUMS`` names a file given relative to the model folder (``../metadata.json``)."""
    return posixpath.relpath(rel, SEAL_FOLDER)


def seal_target(name: str) -> str | None:
    """The model-folder-relative path of a ``SHA256SUMS`` name; None when it leaves the folder
    or points into ``raw/`` or ``proof/`` (never part of the artifact)."""
    rel = posixpath.normpath(posixpath.join(SEAL_FOLDER, name))
    if rel == ".." or rel.startswith("../") or posixpath.isabs(name):
        return None
    if rel.split("/")[0] in ("raw", "proof"):
        return None
    return rel


def seal_entries(files: Mapping[str, str], metadata_sha256: str) -> dict[str, str]:
    """What ``SHA256SUMS`` must hold for ``metadata.json``'s ``files`` and its own SHA256."""
    entries = {seal_name(rel): sha for rel, sha in files.items()}
    entries[seal_name(METADATA)] = metadata_sha256
    return entries


def seal_bytes(entries: Mapping[str, str]) -> bytes:
    """``SHA256SUMS`` with the weights' line first: the WMTP trainer's ``verify_storage.py``
    takes the first hash in the file as the weights' hash."""
    return sha256sums_bytes(entries, first=seal_name(WEIGHTS))


def artifact_files(dirs: ModelDirs) -> dict[str, Path]:
    """Every file of the artifact on disk except ``raw/``, ``proof/`` (run-specific evidence,
    sealed by the instance only, see ``fp16_conversion``), ``metadata.json``, ``SHA256SUMS``,
    ``model.sig`` (a statement about the folder, rewritten whenever it is signed), locks and
    temporary files (what ``metadata.json``'s ``files`` records)."""
    files: dict[str, Path] = {}
    for path in sorted(dirs.root.rglob("*")):
        rel = path.relative_to(dirs.root)
        outside = rel.parts[0] in ("raw", "proof") or path in (
            dirs.metadata,
            dirs.sha256sums,
            dirs.signature,
        )
        if not path.is_file() or outside:
            continue
        if any(part.startswith(".") for part in rel.parts):
            continue
        files[rel.as_posix()] = path
    return files


class ArtifactStaging:
    """The new files of one model artifact, published together under a new seal.

    Files are written (or adopted) at temporary siblings of their destinations; nothing is
    visible until :meth:`publish`. Files of the artifact already on disk and not restaged (a
    tokenizer folder another asset owns) are kept and sealed too. Use :func:`staged_artifact`.
    """

    def __init__(self, dirs: ModelDirs, staging: Staging) -> None:
        self._dirs = dirs
        self._staging = staging
        self._files: dict[str, tuple[Path, str | None]] = {}

    def _rel(self, dest: Path) -> str:
        rel = dest.relative_to(self._dirs.root).as_posix()
        sealed_apart = (self._dirs.metadata, self._dirs.sha256sums)
        if seal_target(seal_name(rel)) != rel or dest in sealed_apart:
            raise ValueError(f"{dest}: not a file this artifact may stage")
        return rel

    def adopt(self, tmp: Path, dest: Path, sha256: str | None = None) -> None:
        """Publish ``tmp``, a complete file another writer made, as ``dest``."""
        self._files[self._rel(dest)] = (tmp, sha256)
        self._staging.adopt(tmp, dest)

    def write(self, dest: Path, data: bytes) -> None:
        """Publish ``data`` as ``dest``."""
        rel = self._rel(dest)
        tmp = self._staging.stage(dest)
        tmp.write_bytes(data)
        self._files[rel] = (tmp, hashlib.sha256(data).hexdigest())

    def copy(self, dest: Path, src: Path) -> None:
        """Publish a copy of ``src`` as ``dest``."""
        rel = self._rel(dest)
        tmp = self._staging.stage(dest)
        shutil.copyfile(src, tmp)
        self._files[rel] = (tmp, None)

    def scratch_dir(self) -> Path:
        """A fresh folder for a writer that writes a whole folder (``adopt_folder`` its files)."""
        return self._staging.scratch_dir(self._dirs.root / _SCRATCH)

    def adopt_folder(self, written: Path, dest: Path) -> None:
        """Publish every file of ``written`` (a :meth:`scratch_dir`) into the folder ``dest``."""
        for path in sorted(p for p in written.iterdir() if p.is_file()):
            self.adopt(path, dest / path.name)

    def publish(self, **fields: Any) -> ModelMetadata:
        """Write ``metadata.json`` (``fields`` plus every file's SHA256 and size) and the seal,
        then make it all visible: old seal and metadata retracted first, seal renamed last."""
        on_disk = {rel: (path, None) for rel, path in artifact_files(self._dirs).items()}
        files: dict[str, tuple[Path, str | None]] = {**on_disk, **self._files}
        hashes = {rel: sha or sha256_file(path) for rel, (path, sha) in sorted(files.items())}
        sizes = {rel: path.stat().st_size for rel, (path, _) in sorted(files.items())}
        metadata = ModelMetadata(files=hashes, size_bytes=sizes, **fields)
        data = json_bytes(metadata.model_dump(mode="json"))
        self._staging.stage(self._dirs.metadata).write_bytes(data)
        seal = seal_entries(hashes, hashlib.sha256(data).hexdigest())
        self._staging.stage(self._dirs.sha256sums).write_bytes(seal_bytes(seal))
        self._staging.publish(retract=(self._dirs.sha256sums, self._dirs.metadata))
        return metadata


@contextlib.contextmanager
def staged_artifact(dirs: ModelDirs, folders: Sequence[Path]) -> Iterator[ArtifactStaging]:
    """Stage a new version of the artifact in ``dirs``; unpublished files vanish at the end.

    ``folders`` are the folders besides the model folder and ``safetensors/`` that this writer
    stages into: their temporaries of interrupted runs are swept first (not those of folders
    another asset writes). The caller holds the artifact's lock.
    """
    for folder in (dirs.root, dirs.safetensors, *folders):
        sweep_stale_tmp(folder)
    sweep_tmp_of(dirs.root / _SCRATCH)
    with Staging() as staging:
        yield ArtifactStaging(dirs, staging)


def current_metadata(
    dirs: ModelDirs,
    source_files: dict[str, str],
    code_version: str,
    notify: Callable[[str], None] | None = None,
) -> ModelMetadata | None:
    """The stored metadata when the artifact is complete and was built from exactly these raw
    files (SHA256) by this code version, with exactly the bytes it records; None when it must
    be (re)built.

    Complete means ``metadata.json`` parses and ``SHA256SUMS`` (the seal, written last) holds
    exactly the entries the metadata implies. Then every recorded file must exist with its
    recorded size (cheap, first) and re-hash to its recorded SHA256 (a flipped byte keeps the
    size): the record alone is not trusted. ``notify`` is told which file differs.
    """
    try:
        data = dirs.metadata.read_bytes()
        metadata = ModelMetadata.model_validate_json(data)
        sums = dirs.sha256sums.read_bytes()
    except (OSError, ValueError):
        return None
    if metadata.code_version != code_version or metadata.source.files != source_files:
        return None
    # Byte equality, not only the same entries: a seal in an older line order is rebuilt.
    if sums != seal_bytes(seal_entries(metadata.files, hashlib.sha256(data).hexdigest())):
        return None
    for rel, size in metadata.size_bytes.items():
        path = dirs.root / rel
        if not path.is_file() or path.stat().st_size != size:
            if notify is not None:
                notify(f"{path}: missing or not {size} bytes as {dirs.metadata.name} records")
            return None
    for rel, sha256 in metadata.files.items():
        path = dirs.root / rel
        found = sha256_file(path)
        if found != sha256:
            if notify is not None:
                notify(
                    f"{path}: SHA256 {found} differs from {sha256} that "
                    f"{dirs.metadata.name} records; rebuilding"
                )
            return None
    return metadata
