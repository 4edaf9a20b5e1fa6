"""Upstream fetchers (Hub and local mirror) that fill an artifact's ``raw/`` folder.

Core layer: no Dagster here. ``source_from_settings`` picks the implementation the public
contract asks for: the mirror when ``WMTP_MIRROR`` is set, the Hub otherwise.
"""

from __future__ import annotations

from wmtp_assets.settings import Settings
from wmtp_assets.sources.base import (
    SOURCE_FILE,
    ChecksumMismatchError,
    FetchResult,
    FileRecord,
    Provenance,
    Source,
    SourceAuthError,
    SourceError,
    SourceFileMissingError,
    SourceUnreachableError,
    read_provenance,
)
from wmtp_assets.sources.hub import HubSource
from wmtp_assets.sources.mirror import MANIFEST_NAME, MirrorSource, write_mirror_manifest


def source_from_settings(settings: Settings, endpoint: str | None = None) -> Source:
    """A :class:`MirrorSource` when ``settings.mirror`` is set, else a :class:`HubSource`.

    ``endpoint`` only applies to the Hub; None keeps the library's default (``HF_ENDPOINT``).
    """
    if settings.mirror is not None:
        return MirrorSource(settings.mirror)
    return HubSource(endpoint=endpoint)


__all__ = [
    "MANIFEST_NAME",
    "SOURCE_FILE",
    "ChecksumMismatchError",
    "FetchResult",
    "FileRecord",
    "HubSource",
    "MirrorSource",
    "Provenance",
    "Source",
    "SourceAuthError",
    "SourceError",
    "SourceFileMissingError",
    "SourceUnreachableError",
    "read_provenance",
    "source_from_settings",
    "write_mirror_manifest",
]
