"""What every model artifact carries besides its weights: ``SHA256SUMS`` and ``metadata.json``.

Publishing order is the contract that keeps a crash from leaving a valid-looking artifact:
``publish_weights`` first removes ``SHA256SUMS``, then renames the fully written and fsynced
weights over the old ones, then writes ``SHA256SUMS``. A reader (or check) that finds weights
without a matching ``SHA256SUMS`` knows the artifact is incomplete; the previous weights stay in
place until the new ones are complete.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wmtp_assets.files.atomic import atomic_write_json, fsync_dir
from wmtp_assets.files.hashing import read_sha256sums, sha256_file, write_sha256sums
from wmtp_assets.files.layout import ModelDirs
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


def publish_weights(tmp_weights: Path, dirs: ModelDirs, sha256: str) -> None:
    """Move finished weights into place and write ``SHA256SUMS`` (see module docstring)."""
    dirs.safetensors.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        dirs.sha256sums.unlink()
    os.replace(tmp_weights, dirs.weights)
    fsync_dir(dirs.safetensors)
    write_sha256sums(dirs.sha256sums, {dirs.weights.name: sha256})


def artifact_files(dirs: ModelDirs) -> dict[str, Path]:
    """Every file of the artifact except ``raw/``, ``metadata.json``, locks and temp files."""
    files: dict[str, Path] = {}
    for path in sorted(dirs.root.rglob("*")):
        rel = path.relative_to(dirs.root)
        if not path.is_file() or rel.parts[0] == "raw" or path == dirs.metadata:
            continue
        if any(part.startswith(".") for part in rel.parts):
            continue
        files[rel.as_posix()] = path
    return files


def write_metadata(dirs: ModelDirs, known_sha256: dict[str, str], **fields: Any) -> ModelMetadata:
    """Hash every artifact file (reusing hashes computed while writing) and write metadata.json."""
    files = artifact_files(dirs)
    hashes = {rel: known_sha256.get(rel) or sha256_file(path) for rel, path in files.items()}
    sizes = {rel: path.stat().st_size for rel, path in files.items()}
    metadata = ModelMetadata(files=hashes, size_bytes=sizes, **fields)
    atomic_write_json(dirs.metadata, metadata.model_dump(mode="json"))
    return metadata


def current_metadata(
    dirs: ModelDirs, source_files: dict[str, str], code_version: str
) -> ModelMetadata | None:
    """The stored metadata when the artifact is complete and was built from exactly these raw
    files (SHA256) by this code version; None when it must be (re)built.

    Complete means ``metadata.json`` parses, ``SHA256SUMS`` names the hash metadata recorded for
    the weights, and every recorded file exists with its recorded size. Hashes are not
    recomputed here (13 GB); the ``sha256_matches`` check does that.
    """
    try:
        metadata = ModelMetadata.model_validate_json(dirs.metadata.read_text(encoding="utf-8"))
        sums = read_sha256sums(dirs.sha256sums)
    except (OSError, ValueError):
        return None
    if metadata.code_version != code_version or metadata.source.files != source_files:
        return None
    if sums.get(dirs.weights.name) != metadata.files.get("safetensors/model.safetensors"):
        return None
    for rel, size in metadata.size_bytes.items():
        path = dirs.root / rel
        if not path.is_file() or path.stat().st_size != size:
            return None
    return metadata
