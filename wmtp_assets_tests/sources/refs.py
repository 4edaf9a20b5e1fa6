"""Shorthand for the tests: a ``RepoRef`` from positional arguments."""

from __future__ import annotations

from collections.abc import Sequence

from wmtp_assets.sources import RepoRef, RepoType


def ref(repo_id: str, repo_type: RepoType, revision: str, patterns: Sequence[str] = ()) -> RepoRef:
    return RepoRef(
        repo_id=repo_id, repo_type=repo_type, revision=revision, patterns=tuple(patterns)
    )
