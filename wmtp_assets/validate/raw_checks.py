"""The check on a ``raw/`` folder: its bytes are still the ones fetched (no Dagster).

Disks rot and people edit files; the fetch's record (``raw/SOURCE.json``) says what every file
hashed to when it was written, so the check re-hashes them all against it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wmtp_assets.sources.provenance import SOURCE_FILE, read_provenance, verify_raw
from wmtp_assets.validate.outcome import CheckOutcome, counted


def raw_matches_source(raw_dir: Path, wanted: Callable[[str], bool] | None = None) -> CheckOutcome:
    """Every file ``raw/SOURCE.json`` lists (for a dataset partition: the split's shards) is
    present and re-hashes to its recorded SHA256; a listing without any such file fails."""
    findings = verify_raw(raw_dir, wanted)
    if findings:
        first = findings[0]
        return CheckOutcome.fail(
            first.message,
            file=first.file,
            expected=first.expected_sha256 or "a valid record",
            found=first.found_sha256 or "missing",
            bad_files=len(findings),
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
        f"{counted(len(checked), 'file')} re-hashed, all as {SOURCE_FILE} records",
        files=len(checked),
        bytes=sum(r.size for r in checked),
    )
