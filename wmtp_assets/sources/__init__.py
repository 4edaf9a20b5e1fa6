"""Upstream fetchers (Hub and local mirror) that fill an artifact's ``raw/`` folder.

Core layer: no Dagster here. One module per job: ``contract`` (``RepoRef``, ``Source``, the
guarantees), ``errors``, ``provenance`` (``SOURCE.json`` and its re-hash check), ``install``
(select, reuse, verify, publish), ``transfer`` (copy-and-hash), ``progress``, and the two
sources, ``hub`` and ``mirror``. ``source_from_settings`` picks the implementation the public
contract asks for: the mirror when ``WMTP_MIRROR`` is set, the Hub otherwise.
"""

from __future__ import annotations

from wmtp_assets.settings import Settings
from wmtp_assets.sources.contract import FetchResult, RepoRef, Source
from wmtp_assets.sources.errors import (
    ChecksumMismatchError,
    SourceAuthError,
    SourceError,
    SourceFileMissingError,
    SourceUnreachableError,
)
from wmtp_assets.sources.hub import HubSource
from wmtp_assets.sources.mirror import (
    MANIFEST_NAME,
    MirrorSource,
    mirror_repo_dir,
    write_mirror_manifest,
)
from wmtp_assets.sources.provenance import (
    SOURCE_FILE,
    FileRecord,
    Provenance,
    RawFinding,
    RepoType,
    read_provenance,
    verify_raw,
)


def source_from_settings(settings: Settings, endpoint: str | None = None) -> Source:
    """A :class:`MirrorSource` when ``settings.mirror`` is set, else a :class:`HubSource`.

    ``endpoint`` only applies to the Hub; None keeps the library's default (``HF_ENDPOINT``).
    """
    source: Source = (
        MirrorSource(settings.mirror) if settings.mirror is not None else HubSource(endpoint)
    )
    source.lock_timeout_s = settings.lock_timeout_s
    return source


__all__ = [
    "MANIFEST_NAME",
    "SOURCE_FILE",
    "ChecksumMismatchError",
    "FetchResult",
    "FileRecord",
    "HubSource",
    "MirrorSource",
    "Provenance",
    "RawFinding",
    "RepoRef",
    "RepoType",
    "Source",
    "SourceAuthError",
    "SourceError",
    "SourceFileMissingError",
    "SourceUnreachableError",
    "mirror_repo_dir",
    "read_provenance",
    "source_from_settings",
    "verify_raw",
    "write_mirror_manifest",
]
