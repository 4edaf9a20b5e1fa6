"""What can go wrong while fetching upstream files; every message names the repo and the file."""

from __future__ import annotations


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
