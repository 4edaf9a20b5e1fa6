"""The check on a ``raw/`` folder: its bytes are still the ones fetched (no Dagster).

Disks rot and people edit files; the fetch's record (``raw/SOURCE.json``) says what every file
hashed to when it was written, so the check re-hashes them all against it, and refuses a file it
does not list (readers of ``raw/`` glob for shards, so an unfetched one would be read).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wmtp_assets.sources.provenance import SOURCE_FILE, read_provenance, verify_raw
from wmtp_assets.validate.outcome import CheckOutcome


def raw_matches_source(
    raw_dir: Path,
    wanted: Callable[[str], bool] | None = None,
    claimed: Callable[[str], bool] | None = None,
) -> CheckOutcome:
    """Every file ``raw/SOURCE.json`` lists (for a dataset partition: the split's shards) is
    present and re-hashes to its recorded SHA256, and no file it does not list is there (among
    those ``claimed`` accepts: for a partition, its split's and those of no split); a listing
    without any such file fails."""
    findings = verify_raw(raw_dir, wanted, claimed)
    if findings:
        first = findings[0]
        if first.unlisted:
            expected, found = f"only the files {SOURCE_FILE} lists", "a file it does not list"
        else:
            expected = first.expected_sha256 or "a valid record"
            found = first.found_sha256 or "missing"
        return CheckOutcome.fail(
            first.message, file=first.file, expected=expected, found=found, bad_files=len(findings)
        )
    provenance = read_provenance(raw_dir)
    assert provenance is not None, "verify_raw reports a missing record"
    checked = [r for r in provenance.files if wanted is None or wanted(r.path)]
    if not checked:
        return CheckOutcome.fail(
            f"{raw_dir / SOURCE_FILE}: lists no file of this asset; expected its upstream files",
            file=str(raw_dir / SOURCE_FILE),
        )
    return CheckOutcome.ok(
        f"{len(checked)} files re-hashed, all as {SOURCE_FILE} records",
        files=len(checked),
        bytes=sum(r.size for r in checked),
    )
