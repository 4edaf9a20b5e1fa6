"""Per-split statistics and the dated per-dataset summary.

Token lengths are kept as exact per-length counts (one integer per possible length
``0..max_tokens``, i.e. 2,049 counters whatever the split size), so percentiles are exact, the
accumulator of a shard merges into the split's by addition, and the summary can merge splits
exactly. Percentiles use the nearest-rank definition: ``pQ`` is the smallest kept length ``v``
such that at least ``Q%`` of kept records have a length ``<= v``.

Files: ``stats/<split>_stats.json`` (one ``SplitStats``, written by the pipeline together with the
split's JSONL) and ``stats/YYYY-MM-DD_summary.json`` (every split's latest stats plus totals,
rebuilt from the per-split files after each split, under the stats folder's lock).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

from wmtp_assets.files.atomic import atomic_write_text
from wmtp_assets.files.layout import DatasetDirs
from wmtp_assets.files.lock import artifact_lock

DropReason = Literal["language", "invalid_text", "empty", "too_long", "not_python"]
DROP_REASONS: tuple[DropReason, ...] = get_args(DropReason)
DROP_RULES: dict[DropReason, str] = {
    "language": "a solution whose upstream language is not Python 2 (1) or Python 3 (3)",
    "invalid_text": (
        "a NUL character or invalid UTF-8 in the instruction, input, problem name or output "
        "(or anywhere in the record): such text breaks C-string tokenizers and JSON consumers"
    ),
    "empty": "the output is empty or whitespace only",
    "too_long": "tokens(instruction) + tokens(input) + tokens(output) > max_tokens",
    "not_python": (
        "a solution labelled Python 2 or 3, within the limit, that does not parse as that Python "
        "(ast.parse; tree-sitter's Python grammar for Python 2): e.g. C++ labelled Python 3"
    ),
}
"""Why a candidate record is dropped; each is counted under the first reason that applies, in
this order."""
HISTOGRAM_BINS = 16
HISTOGRAM_BAR = 20
"""Characters of the longest bar in the markdown histogram."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenLengths(_Model):
    """Summary of kept records' ``tokens(instruction) + tokens(input) + tokens(output)``."""

    count: int
    min: int | None
    mean: float | None
    p50: int | None
    p90: int | None
    p99: int | None
    max: int | None


class HistogramBin(_Model):
    lo: int
    hi: int
    """Inclusive."""
    count: int


class DifficultyCount(_Model):
    problems: int
    """Problems with at least one kept record."""
    records: int


class Totals(_Model):
    """Counts that add up across splits."""

    problems_read: int
    problems_indexed: int
    records: int
    correct: int
    incorrect: int
    dropped: dict[DropReason, int]
    token_lengths: TokenLengths


class SplitStats(Totals):
    """``stats/<split>_stats.json``."""

    dataset: str
    split: str
    max_tokens: int
    tokenizer_sha256: str
    jsonl_sha256: str
    input_files: list[str]
    input_sha256: dict[str, str] = {}
    """``{input file name: SHA256 of the bytes processed}``, hashed in the read that parsed them;
    what ``built_from_recorded_raw`` compares with ``raw/SOURCE.json``. Empty in stats written
    before it was recorded (that check then fails: rematerialize)."""
    token_histogram: list[HistogramBin]
    token_length_counts: dict[int, int]
    """Exact: kept-record count per token length (lengths with no record omitted)."""
    difficulty: dict[int, DifficultyCount]
    """By upstream difficulty; empty for datasets without one."""
    generated_at: str

    def markdown(self) -> str:
        """A short report for the Dagster UI: counts, drops, length percentiles, and the
        histogram's non-empty bins (with a bar scaled to the largest)."""
        lengths = self.token_lengths
        lines = [
            f"**{self.dataset}.{self.split}**: {self.records:,} records "
            f"({self.correct:,} correct / {self.incorrect:,} incorrect) from "
            f"{self.problems_read:,} problems ({self.problems_indexed:,} indexed)",
            "",
            "dropped: " + ", ".join(f"{k} {v:,}" for k, v in self.dropped.items()),
            "",
            f"tokens (max {self.max_tokens}): min {lengths.min}, mean "
            f"{'-' if lengths.mean is None else f'{lengths.mean:.1f}'}, p50 {lengths.p50}, "
            f"p90 {lengths.p90}, p99 {lengths.p99}, max {lengths.max}",
            "",
            "| tokens | records | share | |",
            "|---:|---:|---:|:---|",
        ]
        filled = [b for b in self.token_histogram if b.count]
        total = max(self.records, 1)
        tallest = max((b.count for b in filled), default=1)
        lines += [
            f"| {b.lo}-{b.hi} | {b.count:,} | {100 * b.count / total:.1f}% | "
            f"{'█' * max(1, round(HISTOGRAM_BAR * b.count / tallest))} |"
            for b in filled
        ]
        return "\n".join(lines) + "\n"


class DatasetSummary(_Model):
    """``stats/YYYY-MM-DD_summary.json``: every split processed so far, and their totals."""

    dataset: str
    date: str
    generated_at: str
    splits: dict[str, SplitStats]
    totals: Totals


def percentile(counts: Mapping[int, int], q: float) -> int | None:
    """Nearest-rank percentile of the values whose multiplicities are ``counts``."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total / 100))
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    raise AssertionError("unreachable: rank <= total")


def summarize_lengths(counts: Mapping[int, int]) -> TokenLengths:
    nonzero = {k: v for k, v in counts.items() if v}
    total = sum(nonzero.values())
    if not total:
        return TokenLengths(count=0, min=None, mean=None, p50=None, p90=None, p99=None, max=None)
    return TokenLengths(
        count=total,
        min=min(nonzero),
        mean=sum(k * v for k, v in nonzero.items()) / total,
        p50=percentile(nonzero, 50),
        p90=percentile(nonzero, 90),
        p99=percentile(nonzero, 99),
        max=max(nonzero),
    )


def histogram(counts: Mapping[int, int], max_tokens: int) -> list[HistogramBin]:
    """Up to ``HISTOGRAM_BINS`` equal-width bins over ``0..max_tokens``; the last bin also holds
    ``max_tokens`` itself (e.g. 0-127, ..., 1920-2048)."""
    width = -(-max_tokens // HISTOGRAM_BINS)
    n_bins = -(-max_tokens // width)
    bins = [
        HistogramBin(
            lo=i * width, hi=max_tokens if i == n_bins - 1 else (i + 1) * width - 1, count=0
        )
        for i in range(n_bins)
    ]
    for length, n in counts.items():
        bins[min(length // width, n_bins - 1)].count += n
    return bins


@dataclass
class StatsAccumulator:
    """Counts of one shard or one split; ``merge`` adds another's (for shard results)."""

    max_tokens: int
    problems_read: int = 0
    problems_indexed: int = 0
    correct: int = 0
    incorrect: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    length_counts: list[int] = field(default_factory=list)
    difficulty: dict[int, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.length_counts:
            self.length_counts = [0] * (self.max_tokens + 1)

    def add_record(self, tokens: int, is_correct: bool) -> None:
        self.length_counts[tokens] += 1
        if is_correct:
            self.correct += 1
        else:
            self.incorrect += 1

    def add_drop(self, reason: DropReason, n: int = 1) -> None:
        self.dropped[reason] += n

    def add_problem(self, difficulty: int | None, kept_records: int) -> None:
        """Count one upstream problem after its records were added."""
        self.problems_read += 1
        if kept_records:
            self.problems_indexed += 1
            if difficulty is not None:
                per = self.difficulty.setdefault(difficulty, [0, 0])
                per[0] += 1
                per[1] += kept_records

    def merge(self, other: StatsAccumulator) -> None:
        if other.max_tokens != self.max_tokens:
            raise ValueError("cannot merge stats computed with different max_tokens")
        self.problems_read += other.problems_read
        self.problems_indexed += other.problems_indexed
        self.correct += other.correct
        self.incorrect += other.incorrect
        self.dropped.update(other.dropped)
        self.length_counts = [
            a + b for a, b in zip(self.length_counts, other.length_counts, strict=True)
        ]
        for difficulty, (problems, records) in other.difficulty.items():
            per = self.difficulty.setdefault(difficulty, [0, 0])
            per[0] += problems
            per[1] += records

    def finish(
        self,
        *,
        dataset: str,
        split: str,
        tokenizer_sha256: str,
        jsonl_sha256: str,
        input_files: Iterable[str],
        input_sha256: Mapping[str, str],
    ) -> SplitStats:
        counts = {length: n for length, n in enumerate(self.length_counts) if n}
        return SplitStats(
            dataset=dataset,
            split=split,
            max_tokens=self.max_tokens,
            tokenizer_sha256=tokenizer_sha256,
            jsonl_sha256=jsonl_sha256,
            input_files=list(input_files),
            input_sha256=dict(input_sha256),
            problems_read=self.problems_read,
            problems_indexed=self.problems_indexed,
            records=self.correct + self.incorrect,
            correct=self.correct,
            incorrect=self.incorrect,
            dropped={reason: self.dropped[reason] for reason in DROP_REASONS},
            token_lengths=summarize_lengths(counts),
            token_histogram=histogram(counts, self.max_tokens),
            token_length_counts=counts,
            difficulty={
                d: DifficultyCount(problems=p, records=r)
                for d, (p, r) in sorted(self.difficulty.items())
            },
            generated_at=_now(),
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def totals(splits: Iterable[SplitStats]) -> Totals:
    """Sums across splits; token-length figures from the merged exact counts."""
    splits = list(splits)
    counts: Counter[int] = Counter()
    for s in splits:
        counts.update(s.token_length_counts)
    return Totals(
        problems_read=sum(s.problems_read for s in splits),
        problems_indexed=sum(s.problems_indexed for s in splits),
        records=sum(s.records for s in splits),
        correct=sum(s.correct for s in splits),
        incorrect=sum(s.incorrect for s in splits),
        dropped={r: sum(s.dropped.get(r, 0) for s in splits) for r in DROP_REASONS},
        token_lengths=summarize_lengths(counts),
    )


def write_summary(dirs: DatasetDirs, dataset: str, day: date | None = None) -> Path:
    """Rebuild ``stats/<day>_summary.json`` from every ``stats/<split>_stats.json`` present.

    Holds the stats folder's lock so two splits finishing at once cannot drop each other's
    entry; an earlier summary of the same day is replaced, those of other days are kept.
    """
    day = day or datetime.now(UTC).date()
    with artifact_lock(dirs.stats, timeout_s=120):
        splits = {
            s.split: s
            for s in (
                SplitStats.model_validate_json(p.read_bytes())
                for p in sorted(dirs.stats.glob("*_stats.json"))
            )
        }
        summary = DatasetSummary(
            dataset=dataset,
            date=day.isoformat(),
            generated_at=_now(),
            splits=splits,
            totals=totals(splits.values()),
        )
        return atomic_write_text(dirs.summary_file(day), summary.model_dump_json(indent=2) + "\n")
