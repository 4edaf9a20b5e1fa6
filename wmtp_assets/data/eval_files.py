"""CodeContests evaluation files, in the shapes the WMTP trainer's evaluation reads (REFERENCE §6).

* ``processed/<split>_eval.jsonl`` (``valid`` and ``test``): one ``EvalProblem`` per upstream
  problem, in split row order: ``task_id`` = the problem key (the same key the training records'
  task ids start with, ``#k`` disambiguation included), ``instruction`` = ``description``,
  ``input`` = ``""``, ``metadata`` = source, difficulty, cf_rating, time_limit,
  memory_limit_bytes and the three test sets as ``{input: [], output: []}``.
* ``tests/<split>_tests.json`` (every split, ``train`` included): ``{problem key: {"task_name"
  (upstream name), "public_tests", "private_tests", "generated_tests"}}``, one problem per text
  line so that it streams both ways; train's file is most of the 7.5 GB of upstream parquet, and
  is written one batch of rows at a time, never held.

Every upstream problem is written, including those with no kept training record. Text that is
not valid UTF-8 is written with U+FFFD in place of the bad bytes (``replaced_problems`` counts
the problems concerned); nothing is dropped. Which files apply to a partition is
``eval_outputs``: MBPP and HumanEval evaluate on ``processed/<split>.jsonl`` itself, and the
trainer has no ``train_eval.jsonl``, so those partitions get no file (the asset reports "not
applicable"). Both files are staged and published together. No seal ties them: they are two
assets, each a single file renamed into place whole and checked in full against upstream. A
run first deletes the previous files (``files.staging.retract_first``: at full size the train
tests file is ~6.5 GB, and a rerun must not need the disk for two of it), so a kill or full
disk at any step leaves each one absent or new, never partial or stale; the next run sweeps
what a killed one left and writes both.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from wmtp_assets.data.arrow_rows import to_rows
from wmtp_assets.data.converters import CONVERTERS
from wmtp_assets.data.dataset_card import write_dataset_card
from wmtp_assets.data.jsonl_writer import BUFFER
from wmtp_assets.data.partitions import Partition
from wmtp_assets.data.split_keys import read_problem_keys
from wmtp_assets.data.upstream_schema import CODECONTESTS_SCHEMA, check_columns
from wmtp_assets.files.atomic import sweep_tmp_of
from wmtp_assets.files.json_files import parse_json, validate_json
from wmtp_assets.files.layout import DatasetDirs
from wmtp_assets.files.lock import artifact_lock
from wmtp_assets.files.staging import Staging, retract_first

EVAL_SPLITS = ("valid", "test")
TEST_SETS = ("public_tests", "private_tests", "generated_tests")
BATCH_ROWS = 4
"""Rows per read: one CodeContests row's generated tests can be tens of megabytes."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tests(_Strict):
    input: list[str]
    output: list[str]


class TimeLimit(_Strict):
    seconds: int
    nanos: int


class EvalMetadata(_Strict):
    source: int = Field(description="upstream `source`")
    difficulty: int = Field(description="upstream `difficulty`")
    cf_rating: int = Field(description="upstream Codeforces rating, 0 when unknown")
    time_limit: TimeLimit | None = Field(description="upstream `time_limit`, null when unknown")
    memory_limit_bytes: int = Field(description="upstream `memory_limit_bytes`, 0 when unknown")
    public_tests: Tests
    private_tests: Tests
    generated_tests: Tests


class EvalProblem(_Strict):
    """One line of ``processed/<split>_eval.jsonl``."""

    task_id: str = Field(description="the problem key (problem_id of the training records)")
    instruction: str = Field(description="upstream `description`")
    input: str = Field(description="always ''")
    metadata: EvalMetadata


class ProblemTests(_Strict):
    """One value of ``tests/<split>_tests.json``."""

    task_name: str = Field(description="upstream `name` (not unique across sources)")
    public_tests: Tests
    private_tests: Tests
    generated_tests: Tests


class EvalReport(_Strict):
    partition: str
    eval_jsonl: Path | None
    tests_json: Path | None
    problems: int
    with_tests: dict[str, int] = Field(description="problems with a non-empty test set, per set")
    replaced_problems: int
    seconds: float


def eval_outputs(part: Partition, dirs: DatasetDirs) -> tuple[Path | None, Path | None]:
    """``(eval JSONL, tests JSON)`` of a partition; ``None`` where the file does not apply."""
    if part.dataset != "codecontests":
        return None, None
    eval_jsonl = dirs.eval_jsonl(part.split) if part.split in EVAL_SPLITS else None
    return eval_jsonl, dirs.tests_json(part.split)


def write_eval_files(
    partition: Partition | str, raw_files: Sequence[Path], dirs: DatasetDirs
) -> EvalReport:
    """Write the partition's evaluation files (none for partitions ``eval_outputs`` excludes)."""
    started = time.monotonic()
    part = partition if isinstance(partition, Partition) else Partition.parse(partition)
    eval_jsonl, tests_json = eval_outputs(part, dirs)
    with_tests = dict.fromkeys(TEST_SETS, 0)
    problems = replaced = 0
    if tests_json is not None:
        files = sorted((Path(f) for f in raw_files), key=lambda p: p.name)
        if not files:
            raise ValueError(f"{part}: no upstream parquet files given")
        columns = ["name", *TEST_SETS] + (list(_EVAL_COLUMNS) if eval_jsonl else [])
        for file in files:
            check_columns(file, {c: CODECONTESTS_SCHEMA.field(c).type for c in columns})
        keys = iter(read_problem_keys(files, CONVERTERS["codecontests"]))
        with (
            artifact_lock(dirs.root / ".locks" / f"eval-{part.split}"),
            Staging() as staging,
            contextlib.ExitStack() as stack,
        ):
            for path in (tests_json, eval_jsonl):
                if path is not None:
                    sweep_tmp_of(path)  # what a killed run left
            retract_first(*(p for p in (tests_json, eval_jsonl) if p is not None))
            tests_fh = stack.enter_context(open(staging.stage(tests_json), "xb", buffering=BUFFER))
            eval_fh = (
                stack.enter_context(open(staging.stage(eval_jsonl), "xb", buffering=BUFFER))
                if eval_jsonl
                else None
            )
            tests_fh.write(b"{\n")
            for row, replaced_here in _rows(files, columns):
                key = next(keys)
                tests = {name: _tests(row[name]) for name in TEST_SETS}
                entry = ProblemTests(task_name=row["name"] or "", **tests)
                member = json.dumps(key, ensure_ascii=False).encode() + b":"
                tests_fh.write((b",\n" if problems else b"") + member)
                tests_fh.write(entry.model_dump_json().encode())
                if eval_fh is not None:
                    eval_fh.write(_eval_problem(key, row, tests).model_dump_json().encode() + b"\n")
                problems += 1
                replaced += replaced_here
                for name in TEST_SETS:
                    with_tests[name] += bool(tests[name].input)
            tests_fh.write(b"\n}\n" if problems else b"}\n")
            stack.close()
            staging.publish()
        write_dataset_card(dirs, part.dataset)  # its `eval` config names the eval files
    return EvalReport(
        partition=part.key,
        eval_jsonl=eval_jsonl,
        tests_json=tests_json,
        problems=problems,
        with_tests=with_tests,
        replaced_problems=replaced,
        seconds=round(time.monotonic() - started, 3),
    )


_EVAL_COLUMNS = (
    "description",
    "source",
    "difficulty",
    "cf_rating",
    "time_limit",
    "memory_limit_bytes",
)


def _rows(files: Sequence[Path], columns: list[str]) -> Iterator[tuple[dict[str, Any], bool]]:
    """Rows in split order, invalid UTF-8 replaced by U+FFFD, and whether that changed the row."""
    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=BATCH_ROWS, columns=columns):
            rows, lenient = to_rows(batch)
            for row in rows:
                fixed = _replace_bad_bytes(row) if lenient else row
                yield fixed, fixed != row


def _replace_bad_bytes(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, list):
        return [_replace_bad_bytes(v) for v in value]
    if isinstance(value, dict):
        return {k: _replace_bad_bytes(v) for k, v in value.items()}
    return value


def _tests(value: dict[str, Any] | None) -> Tests:
    value = value or {}
    return Tests(input=value.get("input") or [], output=value.get("output") or [])


def _eval_problem(key: str, row: dict[str, Any], tests: dict[str, Tests]) -> EvalProblem:
    limit = row["time_limit"]
    return EvalProblem(
        task_id=key,
        instruction=row["description"] or "",
        input="",
        metadata=EvalMetadata(
            source=row["source"] or 0,
            difficulty=row["difficulty"] or 0,
            cf_rating=row["cf_rating"] or 0,
            time_limit=None if limit is None else TimeLimit(**limit),
            memory_limit_bytes=row["memory_limit_bytes"] or 0,
            **tests,
        ),
    )


def iter_tests(
    path: Path, lines: Iterable[bytes] | None = None
) -> Iterator[tuple[str, ProblemTests]]:
    """Stream ``(problem key, tests)`` from a ``tests/<split>_tests.json``, one line at a time.

    ``lines``: the file's lines, where the caller reads them itself (to hash them on the way);
    they are taken to the end, so such a reader sees the whole file."""
    with contextlib.ExitStack() as stack:
        source = iter(lines if lines is not None else stack.enter_context(open(path, "rb")))
        if next(source, b"").rstrip(b"\r\n") != b"{":
            raise ValueError(f"{path}: not a tests file of this layout (first line is not '{{')")
        for line in source:
            if line.rstrip(b"\r\n") == b"}":
                if any(rest.strip() for rest in source):
                    raise ValueError(f"{path}: data after the closing line")
                return
            ((key, body),) = parse_json(b"{" + line.rstrip(b",\r\n") + b"}", path).items()
            yield key, validate_json(ProblemTests, body, path)
    raise ValueError(f"{path}: truncated tests file (no closing line)")
