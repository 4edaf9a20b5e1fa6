"""Pure checks over one stored dataset partition's JSONL and its index (no Dagster).

Each check is a ``LineCheck``: a share of one pass over the JSONL (``jsonl_pass.run_pass``),
holding at most a few bytes per record (hashes, small arrays), so the checks of a step read,
hash and parse the 3.7M-record CodeContests train split once between them, in bounded memory
(``JSONL_CHECKS`` names them for ``defs.checks``). Called alone, each function makes its own
pass. Where a check cannot afford to redo the pipeline's work (tokenizing every record), it
re-derives a seeded sample with the real tokenizer and compares; the docstring says so.
"""

from __future__ import annotations

import hashlib
import json
import random
from array import array
from itertools import groupby
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from wmtp_assets.data.partitions import Partition
from wmtp_assets.data.problem_index import (
    LineFields,
    iter_entries,
    iter_line_metadata,
    problem_id_of,
    read_header,
)
from wmtp_assets.data.records import RECORD_MODELS
from wmtp_assets.data.schema import build_schema
from wmtp_assets.data.small_subset import small_limit
from wmtp_assets.data.stats import SplitStats
from wmtp_assets.data.token_count import TokenCounter
from wmtp_assets.files.json_files import read_json_model
from wmtp_assets.files.layout import DatasetDirs, Layout
from wmtp_assets.files.trainer_view import dataset_link
from wmtp_assets.validate.jsonl_pass import run_one
from wmtp_assets.validate.outcome import CheckOutcome
from wmtp_assets.validate.trainer_view import trainer_path_resolves

TOKEN_SAMPLE = 256

TEXT_FIELDS = ("instruction", "input", "output")
"""The fields whose tokens count toward ``max_tokens``."""


DIGEST_SIZE = 12


def _digest(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.blake2b(raw, digest_size=DIGEST_SIZE).digest()


class SchemaLines:
    """``records_match_schema``: the stored schema is checked when the pass is planned."""

    def __init__(
        self, dirs: DatasetDirs, part: Partition, tokenizer_sha256: str, max_tokens: int
    ) -> None:
        self.jsonl = dirs.jsonl(part.split)
        self.model = RECORD_MODELS[part.dataset]
        stored = json.loads(dirs.schema.read_text(encoding="utf-8"))
        expected = json.loads(json.dumps(build_schema(part.dataset, tokenizer_sha256, max_tokens)))
        self.schema_fault: CheckOutcome | None = None
        if stored != expected:
            fields = sorted(
                k for k in expected.keys() | stored.keys() if stored.get(k) != expected.get(k)
            )
            self.schema_fault = CheckOutcome.fail(
                f"{dirs.schema}: differs from the record model's schema in {fields}",
                file=str(dirs.schema),
                fields=fields,
            )

    def line(self, number: int, raw: bytes, row: dict[str, Any]) -> CheckOutcome | None:
        if self.schema_fault is not None:
            return self.schema_fault
        try:
            self.model.model_validate(row)
        except ValidationError as exc:
            first = exc.errors()[0]
            return CheckOutcome.fail(
                f"{self.jsonl}: line {number}: {'.'.join(map(str, first['loc']))}: {first['msg']}",
                file=str(self.jsonl),
                line=number,
                field=".".join(map(str, first["loc"])),
                row=raw[:300].decode("utf-8", "replace"),
            )
        return None

    def end(self, lines: int, sha256: str) -> CheckOutcome:
        if self.schema_fault is not None:
            return self.schema_fault
        name = self.model.__name__
        return CheckOutcome.ok(f"{lines:,} rows match {name} and schema.json", rows=lines)


def records_match_schema(
    dirs: DatasetDirs, part: Partition, tokenizer_sha256: str, max_tokens: int
) -> CheckOutcome:
    """Every row parses into the dataset's record model; schema.json is the one the code emits."""
    return run_one(dirs.jsonl(part.split), SchemaLines(dirs, part, tokenizer_sha256, max_tokens))


class TaskIdLines:
    """``task_ids_unique_and_labelled``: 12 bytes per record (a digest of each task_id in one
    buffer; a dict of them was ~150 bytes per record, 0.5 GB for the real train split), the
    duplicates found at the end by one Arrow sort."""

    def __init__(self, dirs: DatasetDirs, part: Partition) -> None:
        self.jsonl = dirs.jsonl(part.split)
        self.labelled = part.dataset == "codecontests"
        self.digests = bytearray()

    def line(self, number: int, raw: bytes, row: dict[str, Any]) -> CheckOutcome | None:
        task_id = str(row.get("task_id", ""))
        self.digests += _digest(task_id)
        if self.labelled:
            label = "_correct_" if row.get("is_correct") else "_incorrect_"
            if not (task_id.rsplit("_", 1)[0] + "_").endswith(label):
                return CheckOutcome.fail(
                    f"{self.jsonl}: line {number}: task_id {task_id!r} disagrees with "
                    f"is_correct={row.get('is_correct')}",
                    file=str(self.jsonl),
                    line=number,
                    task_id=task_id,
                )
        return None

    def end(self, lines: int, sha256: str) -> CheckOutcome:
        count = len(self.digests) // DIGEST_SIZE
        digests = pa.Array.from_buffers(
            pa.binary(DIGEST_SIZE), count, [None, pa.py_buffer(self.digests)]
        )
        order = pc.sort_indices(digests)  # stable: equal digests keep their line order
        ordered = digests.take(order)
        same = pc.indices_nonzero(pc.equal(ordered.slice(1), ordered.slice(0, max(0, count - 1))))
        if len(same):
            at = same[0].as_py()
            first, second = order[at].as_py(), order[at + 1].as_py()
            task_id = _task_id_on(self.jsonl, second)
            return CheckOutcome.fail(
                f"{self.jsonl}: task_id {task_id!r} on lines {first} and {second}",
                file=str(self.jsonl),
                task_id=task_id,
                lines=[first, second],
            )
        return CheckOutcome.ok(f"{count:,} unique task_ids", rows=count)


def _task_id_on(path: Path, number: int) -> str:
    """The task_id of line ``number`` (read again only to name a duplicate)."""
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh):
            if n == number:
                return str(json.loads(raw).get("task_id"))
    return "?"


def task_ids_unique_and_labelled(dirs: DatasetDirs, part: Partition) -> CheckOutcome:
    """task_ids are unique in the split; ``_correct_``/``_incorrect_`` agrees with is_correct."""
    return run_one(dirs.jsonl(part.split), TaskIdLines(dirs, part))


class TokenSampleLines:
    """``token_limit_respected``: the index's lengths are read when the pass is planned, 16
    bytes per record (``array``: a dict of every line would be ~100 bytes per record); only the
    sampled lines' lengths are kept for the pass."""

    def __init__(
        self, dirs: DatasetDirs, part: Partition, tokenizer_path: Path, max_tokens: int
    ) -> None:
        self.jsonl, self.max_tokens = dirs.jsonl(part.split), max_tokens
        self.fault: CheckOutcome | None = None
        all_lines, all_tokens = array("q"), array("q")
        index = dirs.problem_index(part.split)
        for key, entry in iter_entries(index):
            for lines, tokens_of in (
                (entry.correct_indices, entry.correct_token_lengths),
                (entry.incorrect_indices, entry.incorrect_token_lengths),
            ):
                for line, tokens in zip(lines, tokens_of, strict=True):
                    if tokens > max_tokens and self.fault is None:
                        self.fault = CheckOutcome.fail(
                            f"{index}: problem {key} line {line} has {tokens} output tokens > "
                            f"{max_tokens}",
                            file=str(index),
                            line=line,
                            tokens=tokens,
                        )
                    all_lines.append(line)
                    all_tokens.append(tokens)
        population = array("q", (n for n, _ in groupby(sorted(all_lines))))  # distinct lines
        self.indexed, self.max_indexed = len(population), max(all_tokens, default=0)
        count = min(TOKEN_SAMPLE, len(population))
        self.sample = set(random.Random(0).sample(population, count))
        self.lengths = {
            n: t for n, t in zip(all_lines, all_tokens, strict=True) if n in self.sample
        }
        self.counter = TokenCounter(tokenizer_path, num_threads=2)

    def line(self, number: int, raw: bytes, row: dict[str, Any]) -> CheckOutcome | None:
        if self.fault is not None:
            return self.fault
        if number not in self.sample:
            return None
        texts = [row.get(field) for field in TEXT_FIELDS]
        if not all(isinstance(text, str) for text in texts):
            return CheckOutcome.fail(
                f"{self.jsonl}: line {number}: expected the text fields {', '.join(TEXT_FIELDS)}",
                file=str(self.jsonl),
                line=number,
            )
        instruction, problem_input, output = self.counter.count([str(text) for text in texts])
        total = instruction + problem_input + output
        if output != self.lengths[number] or total > self.max_tokens:
            return CheckOutcome.fail(
                f"{self.jsonl}: line {number} has {output} output tokens ({total} in all); the "
                f"index says {self.lengths[number]} (limit {self.max_tokens} in all)",
                file=str(self.jsonl),
                line=number,
                tokens=output,
                total=total,
                indexed=self.lengths[number],
            )
        return None

    def end(self, lines: int, sha256: str) -> CheckOutcome:
        if self.fault is not None:
            return self.fault
        return CheckOutcome.ok(
            f"{self.indexed:,} indexed output lengths <= {self.max_tokens}; "
            f"{len(self.sample)} re-tokenized rows agree",
            max_indexed=self.max_indexed,
        )


def token_limit_respected(
    dirs: DatasetDirs, part: Partition, tokenizer_path: Path, max_tokens: int
) -> CheckOutcome:
    """Every indexed output length is <= max_tokens, and a seeded sample of records re-tokenized
    with the real tokenizer (no BOS/EOS) has exactly its indexed output length and a total
    (instruction + input + output) <= max_tokens."""
    check = TokenSampleLines(dirs, part, tokenizer_path, max_tokens)
    return run_one(dirs.jsonl(part.split), check)


class CountLines:
    """``counts_match_stats``: the SHA256 comes from the pass itself."""

    def __init__(self, dirs: DatasetDirs, part: Partition) -> None:
        self.jsonl = dirs.jsonl(part.split)
        self.stats = read_json_model(SplitStats, dirs.stats_file(part.split))
        self.header = read_header(dirs.problem_index(part.split))
        self.labelled = part.dataset == "codecontests"
        self.correct = 0

    def line(self, number: int, raw: bytes, row: dict[str, Any]) -> CheckOutcome | None:
        self.correct += not self.labelled or bool(row.get("is_correct"))
        return None

    def end(self, lines: int, sha256: str) -> CheckOutcome:
        stats, header = self.stats, self.header
        if not (sha256 == stats.jsonl_sha256 == header.jsonl_sha256):
            return CheckOutcome.fail(
                f"{self.jsonl}: SHA256 {sha256}, stats say {stats.jsonl_sha256}, index says "
                f"{header.jsonl_sha256}",
                file=str(self.jsonl),
                expected=stats.jsonl_sha256,
                found=sha256,
            )
        found = {"records": lines, "correct": self.correct, "incorrect": lines - self.correct}
        expected = {
            "records": stats.records,
            "correct": stats.correct,
            "incorrect": stats.incorrect,
        }
        if found != expected or lines != header.records:
            return CheckOutcome.fail(
                f"{self.jsonl}: counted {found}, stats say {expected}, index says "
                f"{header.records} records",
                file=str(self.jsonl),
                expected=expected,
                found=found,
            )
        return CheckOutcome.ok(
            f"{lines:,} rows ({self.correct:,} correct) match stats and index", **found
        )


def counts_match_stats(dirs: DatasetDirs, part: Partition) -> CheckOutcome:
    """Rows and labels in the JSONL equal the stats file; JSONL SHA256 equals stats and index."""
    return run_one(dirs.jsonl(part.split), CountLines(dirs, part))


def small_is_subset(dirs: DatasetDirs, part: Partition) -> CheckOutcome:
    """Every line of the small subset is a line of the processed split, within the size limit."""
    small = dirs.small_jsonl(part.split)
    lines = small.read_bytes().splitlines(keepends=True)
    limit = small_limit(part.split)
    if len(lines) > limit:
        return CheckOutcome.fail(
            f"{small}: {len(lines)} lines > limit {limit}", file=str(small), found=len(lines)
        )
    wanted = {_digest(line): i for i, line in enumerate(lines)}
    with open(dirs.jsonl(part.split), "rb") as fh:  # no parse: only bytes are compared
        for line in fh:
            wanted.pop(_digest(line), None)
            if not wanted:
                break
    if wanted:
        first = min(wanted.values())
        return CheckOutcome.fail(
            f"{small}: line {first} is not a line of {dirs.jsonl(part.split)}",
            file=str(small),
            line=first,
            row=lines[first][:300].decode("utf-8", "replace"),
        )
    return CheckOutcome.ok(f"{len(lines)} lines, all in the processed split", rows=len(lines))


def _problem_of(dataset: str, row: dict[str, Any]) -> str:
    metadata = row.get("metadata") or {}
    key = metadata.get("problem_key") if dataset == "codecontests" else row.get("task_id")
    return str(key or "")


def _line_metadata(row: dict[str, Any], fields: LineFields) -> dict[str, Any]:
    """What the index's per-line ``metadata`` must say about ``row``."""
    expected: dict[str, Any] = {}
    if fields.is_correct:
        expected["is_correct"] = row.get("is_correct")
    if fields.difficulty:
        expected["difficulty"] = (row.get("metadata") or {}).get("difficulty")
    return expected | {"problem_id": problem_id_of(row.get("task_id", ""))}


class IndexLines:
    """``index_matches_records``: 5 bytes per record (owner problem, label), plus the index's
    per-line metadata read alongside the JSONL."""

    def __init__(self, dirs: DatasetDirs, part: Partition) -> None:
        self.dataset = part.dataset
        self.index = index = dirs.problem_index(part.split)
        self.jsonl = dirs.jsonl(part.split)
        self.header = read_header(index)
        self.fields = LineFields.of(RECORD_MODELS[part.dataset])
        self.problems: list[str] = []
        self.fault: CheckOutcome | None = None
        records = self.header.records
        self.owner, self.labels = array("i", [-1]) * records, array("b", [0]) * records
        for key, entry in iter_entries(index):
            self.problems.append(key)
            for is_correct, lines in ((1, entry.correct_indices), (0, entry.incorrect_indices)):
                for line in lines:
                    if not 0 <= line < records or self.owner[line] != -1:
                        self.fault = self.fault or CheckOutcome.fail(
                            f"{index}: problem {key} points at line {line}, out of range or "
                            "claimed twice",
                            file=str(index),
                            problem=key,
                            line=line,
                        )
                        continue
                    self.owner[line] = len(self.problems) - 1
                    self.labels[line] = is_correct
        self.line_metadata = iter_line_metadata(index)

    def line(self, number: int, raw: bytes, row: dict[str, Any]) -> CheckOutcome | None:
        if self.fault is not None:
            return self.fault
        if number >= self.header.records or self.owner[number] == -1:
            return CheckOutcome.fail(
                f"{self.jsonl}: line {number} is not in the index",
                file=str(self.jsonl),
                line=number,
            )
        expected = self.problems[self.owner[number]]
        is_correct = bool(row.get("is_correct", True))
        found = {_problem_of(self.dataset, row), problem_id_of(row.get("task_id", ""))}
        label = bool(self.labels[number])
        if found != {expected} or is_correct != label:
            return CheckOutcome.fail(
                f"{self.index}: line {number} indexed under {expected} "
                f"({'correct' if label else 'incorrect'}) but the record is "
                f"{sorted(found)} (is_correct={is_correct})",
                file=str(self.index),
                line=number,
                expected=expected,
                found=sorted(found),
            )
        stored, wanted = next(self.line_metadata, None), _line_metadata(row, self.fields)
        if stored != wanted:
            return CheckOutcome.fail(
                f"{self.index}: metadata[{number}] is {stored}, the line says {wanted}",
                file=str(self.index),
                line=number,
                expected=wanted,
                found=stored,
            )
        return None

    def end(self, lines: int, sha256: str) -> CheckOutcome:
        if self.fault is not None:
            return self.fault
        if lines < self.header.records:
            return CheckOutcome.fail(
                f"{self.jsonl}: {lines} lines, the index says {self.header.records}",
                file=str(self.jsonl),
            )
        if next(self.line_metadata, None) is not None:
            return CheckOutcome.fail(
                f"{self.index}: more metadata entries than JSONL lines", file=str(self.index)
            )
        return CheckOutcome.ok(
            f"{len(self.problems):,} problems index all {self.header.records:,} lines; "
            "metadata aligned",
            problems=len(self.problems),
        )


def index_matches_records(dirs: DatasetDirs, part: Partition) -> CheckOutcome:
    """Each problem_index_map entry's indices point at records of that problem with that label,
    every JSONL line is indexed exactly once, the trainer's problem_id (its task_id pattern) of
    every record is the key it is indexed under, and the per-line ``metadata`` matches the line."""
    return run_one(dirs.jsonl(part.split), IndexLines(dirs, part))


def trainer_path_of_dataset(layout: Layout, part: Partition) -> CheckOutcome:
    """``<root>/datasets/<dataset>`` (the trainer's path) is a relative link to the dataset's
    ``datasets_v2`` folder."""
    return trainer_path_resolves(*dataset_link(layout, part.dataset))
