from __future__ import annotations

import math
import random
from datetime import date
from pathlib import Path

import pytest

from wmtp_assets.data.stats import (
    DROP_REASONS,
    DatasetSummary,
    StatsAccumulator,
    histogram,
    percentile,
    summarize_lengths,
    write_summary,
)
from wmtp_assets.files.layout import Layout


def _nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) / 100)) - 1]


@pytest.mark.parametrize("n", [1, 2, 3, 10, 99, 100, 101, 1000])
def test_percentiles_are_exact(n: int) -> None:
    rng = random.Random(n)
    values = [rng.randint(0, 2048) for _ in range(n)]
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    for q in (50, 90, 99):
        assert percentile(counts, q) == _nearest_rank(values, q)
    summary = summarize_lengths(counts)
    assert (summary.min, summary.max, summary.count) == (min(values), max(values), n)
    assert summary.mean == pytest.approx(sum(values) / n)


def test_empty_lengths() -> None:
    assert summarize_lengths({}).model_dump() == {
        "count": 0,
        "min": None,
        "mean": None,
        "p50": None,
        "p90": None,
        "p99": None,
        "max": None,
    }


def test_histogram_bins_cover_zero_to_max() -> None:
    bins = histogram({0: 1, 127: 2, 128: 3, 2048: 4}, 2048)
    assert len(bins) == 16
    assert (bins[0].lo, bins[0].hi, bins[0].count) == (0, 127, 3)
    assert (bins[1].lo, bins[1].count) == (128, 3)
    assert (bins[-1].lo, bins[-1].hi, bins[-1].count) == (1920, 2048, 4)
    assert [b.lo for b in histogram({}, 10)] == list(range(10))


def _acc(lengths: list[tuple[int, bool]], difficulty: int) -> StatsAccumulator:
    acc = StatsAccumulator(max_tokens=100)
    for n, ok in lengths:
        acc.add_record(n, ok)
    acc.add_problem(difficulty, len(lengths))
    acc.add_problem(difficulty, 0)
    acc.add_drop("language", 3)
    return acc


def test_merge_equals_accumulating_once() -> None:
    a, b = _acc([(10, True), (20, False)], 1), _acc([(30, True)], 2)
    a.merge(b)
    stats = a.finish(
        dataset="d",
        split="s",
        tokenizer_sha256="t",
        jsonl_sha256="j",
        input_files=["f"],
        input_sha256={"f": "0" * 64},
    )
    assert (stats.records, stats.correct, stats.incorrect) == (3, 2, 1)
    assert (stats.problems_read, stats.problems_indexed) == (4, 2)
    assert stats.dropped == {
        "language": 6,
        "invalid_text": 0,
        "empty": 0,
        "not_python": 0,
        "too_long": 0,
    }
    assert stats.token_length_counts == {10: 1, 20: 1, 30: 1}
    assert {d: (c.problems, c.records) for d, c in stats.difficulty.items()} == {
        1: (1, 2),
        2: (1, 1),
    }
    # max_tokens 100 in 16 bins: width ceil(100 / 16) = 7; 10, 20 and 30 fall in 7-13, 14-20
    # and 28-34, and only those (non-empty) bins are listed
    rows = [line.split(" | ")[0] for line in stats.markdown().splitlines() if "█" in line]
    assert rows == ["| 7-13", "| 14-20", "| 28-34"]
    assert list(stats.dropped) == list(DROP_REASONS)


def test_summary_merges_every_split_present(tmp_path: Path) -> None:
    dirs = Layout(tmp_path).dataset("codecontests")
    dirs.stats.mkdir(parents=True)
    for split, lengths in (("train", [(10, True), (20, False)]), ("valid", [(30, True)])):
        stats = _acc(lengths, 1).finish(
            dataset="codecontests",
            split=split,
            tokenizer_sha256="t",
            jsonl_sha256="j",
            input_files=[],
            input_sha256={},
        )
        dirs.stats_file(split).write_text(stats.model_dump_json())
    path = write_summary(dirs, "codecontests", date(2025, 11, 14))
    assert path.name == "2025-11-14_summary.json"
    summary = DatasetSummary.model_validate_json(path.read_bytes())
    assert sorted(summary.splits) == ["train", "valid"]
    assert summary.totals.records == 3
    assert summary.totals.token_lengths.p50 == 20
    assert summary.totals.dropped["language"] == 6
