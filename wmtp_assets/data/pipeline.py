"""One partition's upstream parquet shards -> ``processed/<split>.jsonl``, the problem index and
the split's stats, streamed, in parallel, deterministic.

Flow, per *unit* (a run of consecutive row groups of one shard, at least ``MIN_UNIT_ROWS``
problems): read ``batch_rows`` problems at a time, only the converter's columns (CodeContests'
test columns are most of its 7.5 GB and are never read) -> ``to_rows`` -> converter ->
``judge`` (drop reasons, token counts) -> JSONL part + ``StatsAccumulator`` + ``IndexBuilder``.
Memory is one batch (plus what pyarrow holds of the row group being decoded), never the split;
the only per-split state is 8 bytes per kept record of index line numbers and output lengths.

Units run on a ``ProcessPoolExecutor`` (``spawn``: safe under Dagster's threads; a script that
calls this needs the usual ``if __name__ == "__main__":`` guard) when there is more than one, each
tokenizing with ``workers // processes`` threads; one unit (valid/test, MBPP, HumanEval) runs
in-process with ``workers`` tokenizer threads. The parent appends each unit's part to the split's
JSONL in unit order as soon as it and the units before it are done (hashing it on the way), so the
output does not depend on the worker count or on timing, and the copy overlaps the work.

Problem keys are made up front from the key column alone (a cheap read), because CodeContests
names repeat across shards and the ``#k`` disambiguation must follow split row order.

Filter, per candidate, first reason wins: ``language`` (converter) -> ``invalid_text`` (a NUL
character or invalid UTF-8 in the instruction, input, problem name or output, or anywhere else in
the record; counted and dropped, never fatal) -> ``empty`` (blank output) -> ``too_long``
(``tokens(instruction) + tokens(input) + tokens(output) > max_tokens``, SentencePiece, no BOS/EOS;
instruction and input tokenized once per problem). The output's own count, which the problem
index records for the trainer's length-balanced sampler, comes from the same call. Last,
``not_python``: a solution labelled Python that does not parse as it (``data.python_syntax``, in
the same worker processes that tokenize; only records that fit the limit are parsed, since a
parse costs about what tokenizing does and the longest outputs are the costliest). Malformed
data that cannot be mapped at all (a missing column, a changed type, unpaired solution lists, an
unusable task id) raises an error naming the file (and row).

Publication (see ``Staging``): nothing is renamed until the JSONL, the index, the statement
digests (``data.statements``) and the stats are all complete on disk. The stats file is the
split's seal: it records the JSONL's SHA256 (so do the index header and the statements file), it
is deleted first and renamed last. Disk: a run first deletes the previous version (stats, index,
statements, then the JSONL: ``files.staging.retract_first``), so a rerun needs the new version's
space plus a few units' part files, never the old and the new at once (the real train JSONL is
~4 GB). ``<split>.jsonl``, ``<split>_metadata.json``, ``stats/<split>_statements.json``,
``stats/<split>_stats.json`` are then renamed into place in that order. A split is complete
exactly when its stats file exists and its ``jsonl_sha256`` matches the JSONL and the index (the
``counts_match_stats`` check); a kill or full disk at any step leaves the new version complete or
no stats file, which that check refuses; the next run of the split sweeps the temporaries and
publishes again. An empty split
(files with no rows, or every record dropped as not Python, invalid or empty) is not an error: it
publishes an empty JSONL, an index without problems and stats of zeros; a token limit that drops
every remaining record is (``NothingKeptError``, raised before anything is published: such a limit
makes the output meaningless).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from wmtp_assets.data.arrow_rows import to_rows
from wmtp_assets.data.convert_base import ConvertedProblem, Converter
from wmtp_assets.data.converters import CONVERTERS
from wmtp_assets.data.dataset_card import write_dataset_card
from wmtp_assets.data.jsonl_writer import BUFFER, Concatenation, JsonlWriter
from wmtp_assets.data.judge import Verdict, judge
from wmtp_assets.data.partitions import Partition
from wmtp_assets.data.problem_index import IndexBuilder, IndexHeader, LineFields
from wmtp_assets.data.records import RECORD_MODELS
from wmtp_assets.data.schema import write_schema
from wmtp_assets.data.shard_read import check_unchanged, open_verified
from wmtp_assets.data.split_keys import DataError, read_problem_keys
from wmtp_assets.data.statements import statement_digest, statements_json
from wmtp_assets.data.stats import (
    SplitStats,
    StatsAccumulator,
    write_summary,
)
from wmtp_assets.data.token_count import TokenCounter
from wmtp_assets.data.upstream_schema import check_columns
from wmtp_assets.files.atomic import sweep_tmp_of
from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.files.layout import DatasetDirs
from wmtp_assets.files.lock import artifact_lock
from wmtp_assets.files.staging import Staging, retract_first
from wmtp_assets.files.tokenizer_identity import check_tokenizer_sha256

DEFAULT_BATCH_ROWS = 16
MIN_UNIT_ROWS = 64
AHEAD_PER_PROCESS = 2


class ProcessReport(BaseModel):
    """What ``process_split`` published."""

    model_config = ConfigDict(extra="forbid")

    partition: str
    jsonl: Path
    problem_index: Path
    stats_file: Path
    statements_file: Path
    schema_file: Path
    summary_file: Path
    jsonl_sha256: str
    stats: SplitStats
    units: int
    processes: int
    seconds: float


@dataclass(frozen=True)
class _Unit:
    dataset: str
    file: str
    identity: tuple[int, ...]
    row_groups: tuple[int, ...]
    first_row: int
    keys: tuple[str, ...]
    part: str
    tokenizer: str
    tokenizer_sha256: str
    threads: int
    max_tokens: int
    batch_rows: int


@dataclass
class _UnitResult:
    lines: int
    stats: StatsAccumulator
    index: IndexBuilder
    statements: set[bytes]


def process_split(
    partition: Partition | str,
    raw_files: Sequence[Path],
    dirs: DatasetDirs,
    tokenizer_path: Path,
    *,
    max_tokens: int = 2048,
    expected_tokenizer_sha256: str | None = None,
    workers: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    today: date | None = None,
    lock_timeout_s: float = 0.0,
    expected_sha256: Mapping[Path, str] | None = None,
) -> ProcessReport:
    """Convert, filter and publish one partition (module docstring: the full contract).

    ``raw_files``: the split's upstream parquet shards (any order; processed in file-name order).
    ``workers``: CPU cores to use (default: all this process may run on). Also rewrites
    ``processed/schema.json`` and ``stats/<today>_summary.json``. Raises ``UpstreamSchemaError``,
    ``DataError``, ``TokenizerMismatchError`` (from ``files.tokenizer_identity``),
    ``ArtifactLockedError`` (the split is being processed by another run and ``lock_timeout_s``
    passed), ``ValueError`` (no input files) or ``ShardMismatchError`` (``data.shard_read``: a
    file whose bytes are not its entry in ``expected_sha256``, e.g. ``raw/SOURCE.json``'s
    record; every file is hashed in the read that parses it, and the stats record the hashes).
    """
    started = time.monotonic()
    part = partition if isinstance(partition, Partition) else Partition.parse(partition)
    converter = CONVERTERS[part.dataset]
    files = sorted((Path(f) for f in raw_files), key=lambda p: p.name)
    if not files:
        pattern = part.spec.file_pattern(part.split)
        raise ValueError(f"{part}: no upstream parquet files given (pattern {pattern})")
    for file in files:
        check_columns(file, converter.columns)
    tokenizer_sha256 = (
        check_tokenizer_sha256(tokenizer_path, expected_tokenizer_sha256)
        if expected_tokenizer_sha256
        else sha256_file(tokenizer_path)
    )
    workers = workers or _available_cpus()
    split = part.split
    jsonl, index_path = dirs.jsonl(split), dirs.problem_index(split)
    stats_path, statements_path = dirs.stats_file(split), dirs.statements_file(split)

    with (
        artifact_lock(dirs.root / ".locks" / split, timeout_s=lock_timeout_s),
        Staging() as staging,
    ):
        for path in (jsonl, index_path, statements_path, stats_path):
            sweep_tmp_of(path)
        retract_first(stats_path, index_path, statements_path, jsonl)
        jsonl_tmp = staging.stage(jsonl)
        plan, input_sha256 = _plan_units(files, converter, expected_sha256 or {})
        processes = max(1, min(workers, len(plan)))
        units = [
            _Unit(
                dataset=part.dataset,
                file=str(file),
                identity=tuple(identity),
                row_groups=row_groups,
                first_row=first_row,
                keys=keys,
                part=str(staging.scratch(jsonl)),
                tokenizer=str(tokenizer_path),
                tokenizer_sha256=tokenizer_sha256,
                threads=max(1, workers // processes),
                max_tokens=max_tokens,
                batch_rows=batch_rows,
            )
            for file, identity, row_groups, first_row, keys in plan
        ]
        stats, index, line_offset = StatsAccumulator(max_tokens), IndexBuilder(), 0
        statements: set[bytes] = set()
        results = _results_in_order(units, processes)
        with contextlib.closing(results), open(jsonl_tmp, "xb", buffering=BUFFER) as out:
            joined = Concatenation(out)
            for unit, result in zip(units, results, strict=True):
                stats.merge(result.stats)
                statements |= result.statements
                index.extend(result.index, line_offset)
                line_offset += result.lines
                joined.append(Path(unit.part))
        jsonl_sha256 = joined.sha256
        _check_something_kept(part, stats)

        fields = LineFields.of(RECORD_MODELS[part.dataset])
        header = IndexHeader(
            dataset=part.dataset,
            split=split,
            jsonl=jsonl.name,
            jsonl_sha256=jsonl_sha256,
            records=line_offset,
            source_file=str(jsonl.relative_to(dirs.root.parent.parent)),
            stats=index.stats(fields),
        )
        with open(staging.stage(index_path), "xb", buffering=BUFFER) as fh:
            index.write(fh, header, fields)
        split_stats = stats.finish(
            dataset=part.dataset,
            split=split,
            tokenizer_sha256=tokenizer_sha256,
            jsonl_sha256=jsonl_sha256,
            input_files=[f.name for f in files],
            input_sha256=input_sha256,
        )
        staging.stage(statements_path).write_text(
            statements_json(part.dataset, split, jsonl_sha256, statements)
        )
        staging.stage(stats_path).write_text(split_stats.model_dump_json(indent=2) + "\n")
        staging.publish(retract=(stats_path, index_path, statements_path))

    schema_file = write_schema(dirs, part.dataset, tokenizer_sha256, max_tokens)
    write_dataset_card(dirs, part.dataset)  # processed/README.md: load_dataset(folder)
    summary_file = write_summary(dirs, part.dataset, today)
    return ProcessReport(
        partition=part.key,
        jsonl=jsonl,
        problem_index=index_path,
        stats_file=stats_path,
        statements_file=statements_path,
        schema_file=schema_file,
        summary_file=summary_file,
        jsonl_sha256=jsonl_sha256,
        stats=split_stats,
        units=len(units),
        processes=processes,
        seconds=round(time.monotonic() - started, 3),
    )


class NothingKeptError(DataError):
    """The token limit dropped every record that passed the other filters: the output would be
    an empty split that looks complete. ``setting`` names the limit's field."""

    setting = "max_tokens"


def _check_something_kept(part: Partition, stats: StatsAccumulator) -> None:
    """Raise :class:`NothingKeptError` (before anything is published) when records were read
    and ``too_long`` dropped every one the other filters left."""
    too_long = stats.dropped["too_long"]
    if stats.correct + stats.incorrect or not too_long:
        return
    read = sum(stats.dropped.values())
    raise NothingKeptError(
        f"{part}: max_tokens {stats.max_tokens} kept 0 of {read} records ({too_long} longer "
        f"than {stats.max_tokens} tokens); expected a limit that keeps records"
    )


def _available_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS has one, e.g. in a container)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_Plan = list[tuple[Path, list[int], tuple[int, ...], int, tuple[str, ...]]]


def _plan_units(
    files: Sequence[Path], converter: Converter, expected_sha256: Mapping[Path, str]
) -> tuple[_Plan, dict[str, str]]:
    """``(file, its identity when hashed, row groups, first row in file, problem keys)`` per
    unit, in split row order, and ``{file name: SHA256}``: each file is read once, hashed in
    that read (and checked against ``expected_sha256``), and its keys and layout parsed from
    those bytes."""
    layouts: dict[Path, tuple[pq.FileMetaData, list[int]]] = {}
    hashes: dict[str, str] = {}

    def opener(file: Path) -> pq.ParquetFile:
        parquet, hashes[file.name], identity = open_verified(file, expected_sha256.get(file))
        layouts[file] = (parquet.metadata, identity)
        return parquet

    keys = read_problem_keys(files, converter, opener)
    plan: _Plan = []
    split_row = 0
    for file in files:
        metadata, identity = layouts[file]
        groups: list[int] = []
        first = rows_in_unit = file_row = 0
        for group in range(metadata.num_row_groups):
            groups.append(group)
            rows_in_unit += metadata.row_group(group).num_rows
            if rows_in_unit >= MIN_UNIT_ROWS or group == metadata.num_row_groups - 1:
                unit_keys = tuple(keys[split_row : split_row + rows_in_unit])
                plan.append((file, identity, tuple(groups), first, unit_keys))
                split_row += rows_in_unit
                file_row += rows_in_unit
                groups, first, rows_in_unit = [], file_row, 0
    return plan, hashes


def _results_in_order(units: list[_Unit], processes: int) -> Generator[_UnitResult, None, None]:
    """Each unit's result in unit order, as soon as it and those before it are done, so the
    parent appends parts while later units still run. At most ``AHEAD_PER_PROCESS`` units per
    process are submitted beyond the first unfinished one, so the part files waiting to be
    appended stay a few units' worth, whatever a slow unit does. The first failure of any unit
    cancels what has not started and is raised; so does the consumer stopping early."""
    if processes == 1:
        yield from map(_run_unit, units)
        return
    context = multiprocessing.get_context("spawn")
    window = AHEAD_PER_PROCESS * processes
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures: list[Future[_UnitResult]] = []
        try:
            head = 0
            while head < len(units):
                while len(futures) < min(len(units), head + window):
                    futures.append(pool.submit(_run_unit, units[len(futures)]))
                pending = {f for f in futures[head:] if not f.done()}
                if pending and not futures[head].done():
                    wait(pending, return_when=FIRST_COMPLETED)
                for future in futures[head:]:
                    if future.done():
                        future.result()  # raises the unit's error now, not when its turn comes
                while head < len(futures) and futures[head].done():
                    yield futures[head].result()
                    head += 1
        finally:
            for future in futures:
                future.cancel()


@lru_cache(maxsize=4)
def _counter(tokenizer: str, sha256: str, threads: int) -> TokenCounter:
    """One loaded tokenizer per process (keyed by content too: the file may be replaced)."""
    return TokenCounter(tokenizer, num_threads=threads)


def _run_unit(unit: _Unit) -> _UnitResult:
    converter = CONVERTERS[unit.dataset]
    counter = _counter(unit.tokenizer, unit.tokenizer_sha256, unit.threads)
    stats, index, statements = StatsAccumulator(unit.max_tokens), IndexBuilder(), set[bytes]()
    check_unchanged(unit.file, list(unit.identity))  # the bytes the parent hashed
    batches = pq.ParquetFile(unit.file).iter_batches(
        batch_size=unit.batch_rows,
        row_groups=list(unit.row_groups),
        columns=list(converter.columns),
    )
    done = 0
    with open(unit.part, "xb", buffering=BUFFER) as fh:
        writer = JsonlWriter(fh)
        for batch in batches:
            rows, lenient = to_rows(batch)
            problems = [
                _convert(converter, row, unit.keys[done + n], unit, done + n)
                for n, row in enumerate(rows)
            ]
            done += len(rows)
            for problem, verdicts in zip(
                problems, judge(problems, counter, unit.max_tokens, lenient), strict=True
            ):
                _emit(problem, verdicts, writer, stats, index, statements)
    check_unchanged(unit.file, list(unit.identity))
    if done != len(unit.keys):
        raise DataError(f"{unit.file}: read {done} rows, expected {len(unit.keys)}")
    return _UnitResult(writer.lines, stats, index, statements)


def _convert(
    converter: Converter, row: dict[str, object], key: str, unit: _Unit, done: int
) -> ConvertedProblem:
    try:
        return converter.convert(row, key)
    except (ValueError, TypeError, KeyError) as exc:
        raise DataError(
            f"{unit.file}: row {unit.first_row + done} (problem {key!r}): {exc}"
        ) from exc


def _emit(
    problem: ConvertedProblem,
    verdicts: Sequence[Verdict],
    writer: JsonlWriter,
    stats: StatsAccumulator,
    index: IndexBuilder,
    statements: set[bytes],
) -> None:
    stats.add_drop("language", problem.language_drops)
    kept = 0
    digested: set[str] = set()  # a problem's records share their instruction: digest it once
    for candidate, verdict in zip(problem.candidates, verdicts, strict=True):
        if isinstance(verdict, str):
            stats.add_drop(verdict)
            continue
        total, output_tokens = verdict
        line = writer.write(candidate.record)
        index.add(problem.key, problem.difficulty, candidate.is_correct, line, output_tokens)
        stats.add_record(total, candidate.is_correct)
        if candidate.record.instruction not in digested:
            digested.add(candidate.record.instruction)
            statements.add(statement_digest(candidate.record.instruction))
        kept += 1
    stats.add_problem(problem.difficulty, kept)
