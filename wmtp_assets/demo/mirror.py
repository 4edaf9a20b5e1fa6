"""The demo's local mirror: every upstream repo the graph reads, as small files in the exact
upstream formats, under ``<storage root>/demo_mirror`` (a ``WMTP_MIRROR`` layout).

Each repo folder gets a ``.wmtp_mirror.json`` manifest (revision, commit, per-file SHA256), so
the mirror source verifies the demo's bytes exactly as it would a real air-gapped mirror's.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from wmtp_assets.data.partitions import DATASETS
from wmtp_assets.demo.dataset_mirror import build_dataset_mirror
from wmtp_assets.demo.model_mirror import (
    DEMO_COMMIT,
    build_meta_repo,
    build_sheared_repo,
    build_starling_repo,
)
from wmtp_assets.demo.tokenizer import LLAMA2_TOKENIZER
from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.sources import RepoRef, write_mirror_manifest


class DemoMirror(BaseModel):
    """Where the mirror is and the SHA256 of its tokenizer (the real Llama-2 one, so the demo
    runs under the default WMTP_TOKENIZER_SHA256)."""

    root: Path
    tokenizer_sha256: str


def build_demo_mirror(root: Path) -> DemoMirror:
    """Write (or rewrite, deterministically) the whole demo mirror under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    sha256 = sha256_file(LLAMA2_TOKENIZER)
    build_meta_repo(root, LLAMA2_TOKENIZER)
    build_sheared_repo(root, LLAMA2_TOKENIZER, sha256)
    build_starling_repo(root, LLAMA2_TOKENIZER)
    build_dataset_mirror(root)
    for spec in DATASETS.values():
        pinned = re.fullmatch(r"[0-9a-f]{40}", spec.revision) is not None
        commit = spec.revision if pinned else DEMO_COMMIT
        ref = RepoRef(repo_id=spec.repo_id, repo_type="dataset", revision=spec.revision)
        write_mirror_manifest(root, ref, commit)
    return DemoMirror(root=root, tokenizer_sha256=sha256)
