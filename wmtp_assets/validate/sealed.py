"""Sealed results: the SHA256 of every file an asset published, as recorded when it was
materialized, and the check that the stored bytes are still those.

The other checks compare the files of an artifact with each other (weights with ``SHA256SUMS``,
the JSONL with its stats and index); a rewrite that is consistent everywhere passes them. The
seal lives outside the storage root (in the Dagster event log), so such a rewrite still fails
here. Paths in a seal are relative to the storage root, so a moved or copied root keeps its seals.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.validate.outcome import CheckOutcome, counted


class Seal(BaseModel):
    """What a materialization recorded: its run, when, and ``{path under root: SHA256}``."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    recorded_at: str
    files: dict[str, str]


def seal_files(
    root: Path, paths: Iterable[Path], known: Mapping[Path, str] | None = None
) -> dict[str, str]:
    """``{path relative to root: SHA256}`` of ``paths``; a hash in ``known`` (computed by the
    writer as it wrote the bytes) is taken as is, every other file is hashed now."""
    known = known or {}
    base = os.path.abspath(root)  # not resolve(): a symlinked root keeps its own paths
    return {
        Path(os.path.relpath(os.path.abspath(path), base)).as_posix(): known.get(path)
        or sha256_file(path)
        for path in sorted(set(paths) | set(known))
    }


def unchanged_since_materialization(
    root: Path, seal: Seal | None, unsealed_reason: str = "", unrecorded_since: str = ""
) -> CheckOutcome:
    """Every file the latest materialization published still has the SHA256 recorded in the
    Dagster event log then; a rewrite outside Dagster fails even when it is consistent with
    every other file. No recorded materialization in this instance is a failure, not a pass.
    ``unrecorded_since`` names a later run that set out to materialize the asset but recorded
    nothing (e.g. its instance database was full): a file that differs is then named as not
    sealed by that run, not as changed behind Dagster's back; files equal to the seal pass."""
    if seal is None:
        return CheckOutcome.fail(
            f"not sealed: {unsealed_reason}; nothing to compare the stored bytes with",
            severity="warn",
        )
    if not seal.files:
        return CheckOutcome.ok(
            f"not applicable: the materialization by run {seal.run_id} at {seal.recorded_at} "
            "published no file",
            run_id=seal.run_id,
            applicable="no",
        )
    for rel, expected in sorted(seal.files.items()):
        path = root / rel
        found = sha256_file(path) if path.is_file() else None
        if found != expected:
            what = f"SHA256 {found}" if found else "missing"
            since = f"changed since materialization by run {seal.run_id} at {seal.recorded_at}"
            if unrecorded_since:
                since = f"not sealed: {unrecorded_since}; the seal is run {seal.run_id}'s"
            return CheckOutcome.fail(
                f"{path}: {since} ({what}, recorded {expected})",
                file=str(path),
                expected=expected,
                found=found or "missing",
                run_id=seal.run_id,
                recorded_at=seal.recorded_at,
            )
    return CheckOutcome.ok(
        f"{counted(len(seal.files), 'file')} unchanged since materialization by run "
        f"{seal.run_id} at {seal.recorded_at}",
        files=len(seal.files),
        run_id=seal.run_id,
        recorded_at=seal.recorded_at,
    )
