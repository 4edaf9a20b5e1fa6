"""Disjointness of splits, from the per-split statement digests (no Dagster).

Processing writes ``stats/<split>_statements.json`` (``data.statements``): the digests of the
split's problem statements, bound to the JSONL's SHA256. ``statements_match_split`` proves, in
the partition's one pass over its own JSONL, that the digests are exactly its instructions and
describe exactly its bytes. ``splits_disjoint`` then compares digest sets: its own and each
rival's, each accepted only when it names the JSONL SHA256 its split's stats record (which that
split's ``counts_match_stats`` proves against its bytes). So checking one partition never reads
another partition's JSONL, except to name the two records when a statement is shared.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from wmtp_assets.data.partitions import PARTITION_KEYS, Partition
from wmtp_assets.data.statements import SplitStatements, read_statements, statement_digest
from wmtp_assets.data.stats import SplitStats
from wmtp_assets.files.json_files import read_json_model
from wmtp_assets.files.layout import DatasetDirs, Layout
from wmtp_assets.validate.jsonl_pass import HashedLines, parse_line, run_one
from wmtp_assets.validate.outcome import CheckOutcome, guarded


class StatementLines:
    """``statements_match_split`` as a share of the partition's pass over its JSONL."""

    def __init__(self, dirs: DatasetDirs, part: Partition) -> None:
        self.jsonl = dirs.jsonl(part.split)
        self.path = dirs.statements_file(part.split)
        self.stored = read_statements(self.path)
        if (self.stored.dataset, self.stored.split) != (part.dataset, part.split):
            raise ValueError(
                f"{self.path}: describes {self.stored.dataset}.{self.stored.split}, "
                f"expected {part.key}"
            )
        self.found: set[bytes] = set()
        self._last = ""

    def line(self, number: int, raw: bytes, row: dict[str, Any]) -> CheckOutcome | None:
        instruction = row.get("instruction")
        if not isinstance(instruction, str):
            return CheckOutcome.fail(
                f"{self.jsonl}: line {number}: expected a string instruction",
                file=str(self.jsonl),
                line=number,
            )
        if instruction != self._last:  # a problem's records are consecutive: digest it once
            self.found.add(statement_digest(instruction))
            self._last = instruction
        return None

    def end(self, lines: int, sha256: str) -> CheckOutcome:
        if self.stored.jsonl_sha256 != sha256:
            return CheckOutcome.fail(
                f"{self.path}: describes a JSONL with SHA256 {self.stored.jsonl_sha256}, "
                f"{self.jsonl} has {sha256}",
                file=str(self.path),
                expected=sha256,
                found=self.stored.jsonl_sha256,
            )
        stored = self.stored.digests()
        if stored != self.found:
            return CheckOutcome.fail(
                f"{self.path}: {len(self.found - stored)} statements of {self.jsonl.name} are "
                f"not in it, {len(stored - self.found)} it lists are not in the JSONL",
                file=str(self.path),
                missing=len(self.found - stored),
                extra=len(stored - self.found),
            )
        return CheckOutcome.ok(
            f"{len(stored):,} statement digests, exactly those of {lines:,} lines",
            statements=len(stored),
        )


def statements_match_split(dirs: DatasetDirs, part: Partition) -> CheckOutcome:
    """``stats/<split>_statements.json`` names the JSONL's SHA256 and holds exactly the digests
    of its instructions (what ``splits_disjoint`` compares)."""
    return run_one(dirs.jsonl(part.split), StatementLines(dirs, part))


def _rivals(part: Partition) -> list[Partition]:
    """The partitions whose problems must not appear in ``part``, each once: the other splits
    of CodeContests, and train against every evaluation split (and back)."""
    others = [Partition.parse(k) for k in PARTITION_KEYS if k != part.key]
    is_train = part.split == "train"
    return [
        p
        for p in others
        if (part.dataset == "codecontests" == p.dataset) or ((p.split == "train") != is_train)
    ]


def _bound_statements(dirs: DatasetDirs, part: Partition) -> SplitStatements:
    """A split's digests, refused unless they name the JSONL its stats file records."""
    statements = read_statements(dirs.statements_file(part.split))
    stats = read_json_model(SplitStats, dirs.stats_file(part.split))
    if statements.jsonl_sha256 != stats.jsonl_sha256:
        raise ValueError(
            f"{dirs.statements_file(part.split)}: describes JSONL SHA256 "
            f"{statements.jsonl_sha256}, but {dirs.stats_file(part.split)} records "
            f"{stats.jsonl_sha256} (reprocess {part.key})"
        )
    return statements


def _task_id_with(path: Path, digests: set[bytes]) -> str:
    """The task_id of the first line of ``path`` whose statement is among ``digests``."""
    for number, raw in enumerate(HashedLines(path)):
        row = parse_line(path, number, raw)
        if statement_digest(str(row.get("instruction", ""))) in digests:
            return str(row.get("task_id"))
    return "?"


def splits_disjoint(layout: Layout, part: Partition) -> CheckOutcome:
    """No problem statement of this split appears in a split it must stay apart from (other
    CodeContests splits; train vs every evaluation split). Compared by the exact instruction
    text's digest, from each split's statements file (bound to its stats' JSONL SHA256);
    splits not materialized yet are skipped and listed."""
    return guarded(partial(_splits_disjoint, layout, part))


def _splits_disjoint(layout: Layout, part: Partition) -> CheckOutcome:
    dirs = layout.dataset(part.dataset)
    mine = _bound_statements(dirs, part).digests()
    compared: list[str] = []
    missing: list[str] = []
    for rival in _rivals(part):
        theirs_dirs = layout.dataset(rival.dataset)
        if not theirs_dirs.jsonl(rival.split).exists():
            missing.append(rival.key)
            continue
        compared.append(rival.key)
        shared = mine & _bound_statements(theirs_dirs, rival).digests()
        if shared:
            task_id = _task_id_with(dirs.jsonl(part.split), shared)
            other = _task_id_with(theirs_dirs.jsonl(rival.split), shared)
            return CheckOutcome.fail(
                f"{part.key} {task_id} has the same problem statement as {rival.key} {other} "
                f"({len(shared)} shared)",
                partition=part.key,
                task_id=task_id,
                other=f"{rival.key}:{other}",
                shared=len(shared),
            )
    return CheckOutcome.ok(
        f"{len(mine):,} problem statements, none in {', '.join(compared) or 'no other split'}",
        compared=compared,
        not_materialized=missing,
    )
