"""The check that a split's derived files were built from the raw bytes on record now.

``raw_matches_source`` proves ``raw/`` holds what ``raw/SOURCE.json`` records, but not that the
JSONL was built from those bytes: rot in a shard, a rebuild of the derived files from the rotten
bytes, then a refetch of the raw would leave every file consistent with its own record. The
pipeline hashes each shard in the read that parses it and refuses one that differs from
``SOURCE.json``; the stats (the split's seal) record those hashes (``input_sha256``), and this
check holds them against the current record, so a derived split built from any other bytes (an
older snapshot, a refetch of another commit, a build before the hashes were recorded) fails.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from wmtp_assets.data.partitions import Partition
from wmtp_assets.data.stats import SplitStats
from wmtp_assets.files.json_files import read_json_model
from wmtp_assets.files.layout import DatasetDirs
from wmtp_assets.sources.provenance import SOURCE_FILE, read_provenance
from wmtp_assets.validate.outcome import CheckOutcome


def built_from_recorded_raw(dirs: DatasetDirs, part: Partition) -> CheckOutcome:
    """The stats' ``input_sha256`` equals ``raw/SOURCE.json``'s records of the split's shards
    (by file name): same files, same SHA256 each."""
    stats_file = dirs.stats_file(part.split)
    stats = read_json_model(SplitStats, stats_file)
    record_file = dirs.raw / SOURCE_FILE
    provenance = read_provenance(dirs.raw)
    if provenance is None:
        return CheckOutcome.fail(f"{record_file}: missing; nothing says what raw/ should hold")
    recorded = {
        PurePosixPath(r.path).name: r.sha256
        for r in provenance.files
        if part.spec.matches(r.path, part.split)
    }
    built = stats.input_sha256
    if not built:
        return CheckOutcome.fail(
            f"{stats_file}: records no input_sha256 (written by older code); nothing proves "
            "which raw bytes the split was built from. Rematerialize datasets/processed",
            file=str(stats_file),
        )
    for name in sorted(set(recorded) | set(built)):
        if recorded.get(name) != built.get(name):
            return CheckOutcome.fail(
                f"{stats_file}: built from {name} with SHA256 {built.get(name, '(not read)')}, "
                f"but {record_file} records {recorded.get(name, '(no such file)')}; the derived "
                "files are not of the raw bytes on record. Rematerialize datasets/processed",
                file=str(stats_file),
                expected=recorded.get(name, "(no such file)"),
                found=built.get(name, "(not read)"),
            )
    return CheckOutcome.ok(
        f"built from the {len(built)} shards {SOURCE_FILE} records, byte for byte",
        files=len(built),
    )
