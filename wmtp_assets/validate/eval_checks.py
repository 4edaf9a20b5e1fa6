"""Checks of the CodeContests evaluation files against upstream (no Dagster).

``processed/<split>_eval.jsonl`` and ``tests/<split>_tests.json`` are compared with the split's
upstream parquet, problem by problem, in order: keys, names and test counts (Arrow computes the
counts without decoding the test strings). Each file is read once, hashed on the way
(``jsonl_pass.HashedLines``), so the seal of the same step does not read it again; at full size
the train tests file is ~6.5 GB.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from wmtp_assets.data.converters import CONVERTERS
from wmtp_assets.data.eval_files import TEST_SETS, eval_outputs, iter_tests
from wmtp_assets.data.partitions import Partition
from wmtp_assets.data.problem_index import iter_entries
from wmtp_assets.data.split_keys import read_problem_keys
from wmtp_assets.files.layout import DatasetDirs
from wmtp_assets.validate.jsonl_pass import HashedLines, parse_line
from wmtp_assets.validate.outcome import CheckOutcome

Counts = tuple[int, ...]


def _upstream_problems(dirs: DatasetDirs, part: Partition) -> Iterator[tuple[str, str, Counts]]:
    """``(problem key, upstream name, tests per set)`` of every upstream row, in split order;
    the counts are list lengths computed by Arrow, without decoding the test strings."""
    files = part.files_in(dirs.raw)
    if not files:
        raise FileNotFoundError(f"{dirs.raw}: no upstream files of {part} (materialize raw)")
    keys = iter(read_problem_keys(files, CONVERTERS[part.dataset]))
    for file in files:
        batches = pq.ParquetFile(file).iter_batches(batch_size=16, columns=["name", *TEST_SETS])
        for batch in batches:
            lengths = [
                pc.fill_null(pc.list_value_length(pc.struct_field(batch.column(s), "input")), 0)
                for s in TEST_SETS
            ]
            for i, name in enumerate(batch.column("name").to_pylist()):
                counts = tuple(length[i].as_py() for length in lengths)
                yield next(keys), name or "", counts


def _coverage(
    dirs: DatasetDirs,
    part: Partition,
    file: Path,
    stored: Iterator[tuple[str, str | None, dict[str, Any]]],
) -> CheckOutcome:
    """Compare ``(key, name or None, tests per set)`` read from ``file`` with upstream, in order,
    then check that every training record's problem is among them."""
    keys: set[str] = set()
    upstream = _upstream_problems(dirs, part)
    for row, (key, name, tests) in enumerate(stored):
        expected = next(upstream, None)
        if expected is None:
            return CheckOutcome.fail(f"{file}: entry {row} ({key!r}) has no upstream problem")
        want_key, want_name, want_counts = expected
        counts = tuple(len(tests[s]["input"]) for s in TEST_SETS)
        paired = all(len(tests[s]["input"]) == len(tests[s]["output"]) for s in TEST_SETS)
        if key in keys or key != want_key or name not in (None, want_name):
            return CheckOutcome.fail(
                f"{file}: entry {row} is {key!r} (name {name!r}); upstream row {row} is "
                f"{want_key!r} (name {want_name!r}), each problem once in split order",
                file=str(file),
                entry=row,
                expected=want_key,
                found=key,
            )
        if counts != want_counts or not paired:
            return CheckOutcome.fail(
                f"{file}: {key!r} has {dict(zip(TEST_SETS, counts, strict=True))} tests "
                f"(inputs and outputs paired: {paired}); upstream has "
                f"{dict(zip(TEST_SETS, want_counts, strict=True))}",
                file=str(file),
                problem=key,
            )
        keys.add(key)
    missing = next(upstream, None)
    if missing is not None:
        return CheckOutcome.fail(
            f"{file}: upstream problem {missing[0]!r} is missing",
            file=str(file),
            problem=missing[0],
        )
    index = dirs.problem_index(part.split)
    for problem_id, _ in iter_entries(index):
        if problem_id not in keys:
            return CheckOutcome.fail(
                f"{index}: training problem {problem_id!r} is not in {file}",
                file=str(file),
                problem=problem_id,
            )
    return CheckOutcome.ok(
        f"{len(keys):,} problems, each once, tests as upstream; training ids agree",
        problems=len(keys),
    )


def eval_problems_cover_split(dirs: DatasetDirs, part: Partition) -> CheckOutcome:
    """``processed/<split>_eval.jsonl`` holds every upstream problem of the split once, in order,
    with the upstream test counts, and every training record's problem_id is one of its task_ids
    (not applicable outside CodeContests valid/test)."""
    eval_jsonl, _ = eval_outputs(part, dirs)
    if eval_jsonl is None:
        return CheckOutcome.ok(f"not applicable: {part} has no evaluation JSONL", applicable="no")
    lines = HashedLines(eval_jsonl)
    rows = (parse_line(eval_jsonl, n, raw) for n, raw in enumerate(lines))
    stored = ((row["task_id"], None, row["metadata"]) for row in rows)
    return _coverage(dirs, part, eval_jsonl, stored)


def eval_tests_cover_split(dirs: DatasetDirs, part: Partition) -> CheckOutcome:
    """``tests/<split>_tests.json`` holds every upstream problem of the split once, in order,
    under its problem key with its upstream name and test counts, and every training record's
    problem_id is one of its keys (not applicable outside CodeContests)."""
    _, tests_json = eval_outputs(part, dirs)
    if tests_json is None:
        return CheckOutcome.ok(f"not applicable: {part} has no tests file", applicable="no")
    entries = iter_tests(tests_json, HashedLines(tests_json))
    stored = ((key, entry.task_name, entry.model_dump()) for key, entry in entries)
    return _coverage(dirs, part, tests_json, stored)
