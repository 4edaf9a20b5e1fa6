"""What a person reads about an asset in the UI: paths, sizes, hashes, owners and tags, the
settings a step ran with (each with its origin), and the seal of what a materialization
published."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import dagster as dg

from wmtp_assets.data.stats import SplitStats
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.files.hashing import file_identity
from wmtp_assets.files.layout import ModelDirs
from wmtp_assets.settings import ENV_VARS, Settings, SettingsError
from wmtp_assets.validate.sealed import seal_files

SEALED_FILES = "sealed_files"
"""Metadata key of a materialization's seal: JSON ``{path under the storage root: SHA256}``."""
SEALED_IDENTITY = "sealed_identity"
"""Metadata key: JSON ``{path under the storage root: [size, mtime_ns, inode]}`` when sealed; the
checks of the same run reuse the writer's hash of a file whose identity is still this one."""


def file_entries(prefix: str, path: Path, sha256: str) -> dict[str, dg.MetadataValue]:
    """Path, size and SHA256 of one stored file, under keys starting with ``prefix``."""
    return {
        f"{prefix}_path": dg.MetadataValue.path(str(path)),
        f"{prefix}_size_bytes": dg.MetadataValue.int(path.stat().st_size),
        f"{prefix}_sha256": dg.MetadataValue.text(sha256),
    }


def files_table(files: dict[str, str], sizes: dict[str, int]) -> dg.MetadataValue:
    """A markdown table of every file of an artifact."""
    rows = ["| file | size (bytes) | SHA256 |", "|---|---:|---|"]
    rows += [f"| `{name}` | {sizes.get(name, 0):,} | `{sha}` |" for name, sha in files.items()]
    return dg.MetadataValue.md("\n".join(rows))


def sealed_files(
    root: Path, paths: Iterable[Path] = (), known: Mapping[Path, str] | None = None
) -> dict[str, dg.MetadataValue]:
    """The seal of every file this materialization published (``paths``, and those in ``known``
    whose SHA256 the writer computed), for the ``unchanged_since_materialization`` check."""
    files = seal_files(root, paths, known)
    identity = {rel: file_identity(root / rel) for rel in files}
    return {
        SEALED_FILES: dg.MetadataValue.json(files),
        SEALED_IDENTITY: dg.MetadataValue.json(identity),
    }


def sealed_digests(
    root: Path, metadata: Mapping[str, object]
) -> dict[Path, tuple[str, Sequence[int]]]:
    """The seal in a materialization's ``metadata`` as ``{file: (SHA256, identity when
    sealed)}``, what ``shared_hashes`` and signing reuse for files still of that identity."""
    files, identity = metadata.get(SEALED_FILES), metadata.get(SEALED_IDENTITY)
    if not isinstance(files, dg.JsonMetadataValue) or not isinstance(
        identity, dg.JsonMetadataValue
    ):
        return {}
    shas = files.value if isinstance(files.value, dict) else {}
    ids = identity.value if isinstance(identity.value, dict) else {}
    return {root / rel: (sha, ids[rel]) for rel, sha in shas.items() if rel in ids}


def model_sealed_files(
    root: Path, dirs: ModelDirs, files: Mapping[str, str]
) -> dict[str, dg.MetadataValue]:
    """The seal of a model artifact: the files ``metadata.json`` records (``files``, hashed by
    their writer), ``metadata.json`` itself and the conversion's source trace."""
    proof = [dirs.source_trace] if dirs.source_trace.is_file() else []
    known = {dirs.root / rel: sha for rel, sha in files.items()}
    return sealed_files(root, [dirs.metadata, *proof], known)


OWNERS = ["team:wmtp"]
"""Who answers for every asset of this code location (shown in the catalog)."""

FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(days=30), warn_window=timedelta(days=8)
)
"""Every asset the ``revalidate`` job checks: materialized within 30 days (warn after 8). Dagster
evaluates freshness from the last materialization only, never from check runs, so this states
how old the seal that the daily revalidation compares against may grow: re-materializing a
current artifact reuses its bytes (fetches and conversions skip what is current, the rest is
rewritten byte-identical) and re-seals it under the running code."""

Stage = Literal["upstream", "converted", "generated", "derived", "subset"]


def asset_tags(stage: Stage) -> dict[str, str]:
    """Catalog tags: where in the flow an asset sits (upstream bytes, a conversion of them, ...)."""
    return {"wmtp/stage": stage}


RUN_CONFIG = "run config"
IN_CODE = "definitions (code)"


def setting_origins(wmtp: WmtpResource, run_config: Mapping[str, Any]) -> dict[str, str]:
    """Where each of the resource's values came from: the environment variable, settings file or
    ``default`` that ``Settings.load`` names in this step's process when it gives the same value;
    else ``run config`` (a launchpad or ``--config-json`` value; Dagster's run config for a
    resource holds every field, so only a differing value is an override), else
    ``definitions (code)`` (the value the definitions were built with, e.g. by a test)."""
    overridden = run_config.get("resources", {}).get("wmtp", {}).get("config", {}) or {}
    try:
        here = Settings.load()
        for_root = Settings.load(storage_root=Path(wmtp.storage_root))
    except SettingsError as exc:
        return dict.fromkeys(ENV_VARS, f"unknown ({exc})")
    ours = wmtp.settings
    origins: dict[str, str] = {}
    for field in ENV_VARS:
        loaded = here if field == "storage_root" else for_root
        if getattr(loaded, field) == getattr(ours, field):
            origins[field] = loaded.origin(field)
        elif field in overridden:
            origins[field] = RUN_CONFIG
        else:
            origins[field] = IN_CODE
    return origins


def settings_table(settings: Settings, origins: Mapping[str, str]) -> dg.MetadataValue:
    """A markdown table of every setting a step ran with and where it came from (origin before
    value, so a long path or hash cannot push it out of the UI's metadata column)."""
    rows = ["| setting | origin | value |", "|---|---|---|"]
    for field, var in ENV_VARS.items():
        value = getattr(settings, field)
        rows.append(f"| `{var}` | {origins[field]} | `{'(unset)' if value is None else value}` |")
    return dg.MetadataValue.md("\n".join(rows))


def stats_entries(stats: SplitStats) -> dict[str, dg.MetadataValue]:
    """A split's figures as numbers, one key each, so the asset's plots chart them across
    materializations: candidate records read, kept, dropped in all and by reason, and the kept
    records' token-length percentiles (absent for a split that kept nothing)."""
    entries: dict[str, dg.MetadataValue] = {
        "records_read": dg.MetadataValue.int(stats.records + sum(stats.dropped.values())),
        "kept": dg.MetadataValue.int(stats.records),
        "dropped": dg.MetadataValue.int(sum(stats.dropped.values())),
    }
    entries |= {f"dropped_{r}": dg.MetadataValue.int(n) for r, n in stats.dropped.items()}
    lengths = stats.token_lengths
    figures = {"p50": lengths.p50, "p90": lengths.p90, "p99": lengths.p99, "max": lengths.max}
    entries |= {f"tokens_{k}": dg.MetadataValue.int(v) for k, v in figures.items() if v is not None}
    if lengths.mean is not None:
        entries["tokens_mean"] = dg.MetadataValue.float(lengths.mean)
    return entries
