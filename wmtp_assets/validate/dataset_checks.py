"""Pure checks over one stored dataset partition (no Dagster): each returns a ``CheckOutcome``.

Each check streams the JSONL once, holding at most a few bytes per record (hashes, small
arrays), so they run over the 3.7M-record CodeContests train split in bounded memory.
Where a check cannot afford to redo the pipeline's work (tokenizing every record), it re-derives
a seeded sample with the real tokenizer and compares; the docstring says so.
"""

from __future__ import annotations

import hashlib
import json
import random
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ValidationError

from wmtp_assets.data.converters import CONVERTERS
from wmtp_assets.data.eval_files import TEST_SETS, eval_outputs, iter_tests
from wmtp_assets.data.partitions import PARTITION_KEYS, Partition
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
from wmtp_assets.data.split_keys import read_problem_keys
from wmtp_assets.data.stats import SplitStats
from wmtp_assets.data.token_count import TokenCounter
from wmtp_assets.files.hashing import sha256_file
from wmtp_assets.files.json_files import read_json_model
from wmtp_assets.files.layout import DatasetDirs, Layout
from wmtp_assets.files.trainer_view import dataset_link
from wmtp_assets.validate.outcome import CheckOutcome
from wmtp_assets.validate.trainer_view import trainer_path_resolves

TOKEN_SAMPLE = 256
Counts = tuple[int, ...]


TEXT_FIELDS = ("instruction", "input", "output")
"""The fields whose tokens count toward ``max_tokens``."""


def iter_jsonl(path: Path) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """``(0-based line number, raw line, parsed object)``; a bad line raises naming file+line."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh):
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {number} is not JSON ({exc})") from exc
            if not isinstance(obj, dict):
                raise ValueError(f"{path}: line {number} is not a JSON object")
            yield number, raw, obj


def _digest(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.blake2b(raw, digest_size=12).digest()


def _stats(dirs: DatasetDirs, part: Partition) -> SplitStats:
    return read_json_model(SplitStats, dirs.stats_file(part.split))


def records_match_schema(
    dirs: DatasetDirs, part: Partition, tokenizer_sha256: str, max_tokens: int
) -> CheckOutcome:
    """Every row parses into the dataset's record model; schema.json is the one the code emits."""
    schema_path = dirs.schema
    stored = json.loads(schema_path.read_text(encoding="utf-8"))
    expected = json.loads(json.dumps(build_schema(part.dataset, tokenizer_sha256, max_tokens)))
    if stored != expected:
        fields = sorted(
            k for k in expected.keys() | stored.keys() if stored.get(k) != expected.get(k)
        )
        return CheckOutcome.fail(
            f"{schema_path}: differs from the record model's schema in {fields}",
            file=str(schema_path),
            fields=fields,
        )
    model = RECORD_MODELS[part.dataset]
    jsonl = dirs.jsonl(part.split)
    count = 0
    for number, raw, _ in iter_jsonl(jsonl):
        try:
            model.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            return CheckOutcome.fail(
                f"{jsonl}: line {number}: {'.'.join(map(str, first['loc']))}: {first['msg']}",
                file=str(jsonl),
                line=number,
                field=".".join(map(str, first["loc"])),
                row=raw[:300].decode("utf-8", "replace"),
            )
        count += 1
    return CheckOutcome.ok(f"{count:,} rows match {model.__name__} and schema.json", rows=count)


def task_ids_unique_and_labelled(dirs: DatasetDirs, part: Partition) -> CheckOutcome:
    """task_ids are unique in the split; ``_correct_``/``_incorrect_`` agrees with is_correct."""
    jsonl = dirs.jsonl(part.split)
    seen: dict[bytes, int] = {}
    for number, _, row in iter_jsonl(jsonl):
        task_id = row.get("task_id", "")
        digest = _digest(task_id)
        if digest in seen:
            return CheckOutcome.fail(
                f"{jsonl}: task_id {task_id!r} on lines {seen[digest]} and {number}",
                file=str(jsonl),
                task_id=task_id,
                lines=[seen[digest], number],
            )
        seen[digest] = number
        if part.dataset == "codecontests":
            label = "_correct_" if row.get("is_correct") else "_incorrect_"
            stem = task_id.rsplit("_", 1)[0] + "_"
            if not stem.endswith(label):
                return CheckOutcome.fail(
                    f"{jsonl}: line {number}: task_id {task_id!r} disagrees with "
                    f"is_correct={row.get('is_correct')}",
                    file=str(jsonl),
                    line=number,
                    task_id=task_id,
                )
    return CheckOutcome.ok(f"{len(seen):,} unique task_ids", rows=len(seen))


def token_limit_respected(
    dirs: DatasetDirs, part: Partition, tokenizer_path: Path, max_tokens: int
) -> CheckOutcome:
    """Every indexed output length is <= max_tokens, and a seeded sample of records re-tokenized
    with the real tokenizer (no BOS/EOS) has exactly its indexed output length and a total
    (instruction + input + output) <= max_tokens."""
    index = dirs.problem_index(part.split)
    lengths: dict[int, int] = {}
    for key, entry in iter_entries(index):
        for lines, tokens_of in (
            (entry.correct_indices, entry.correct_token_lengths),
            (entry.incorrect_indices, entry.incorrect_token_lengths),
        ):
            for line, tokens in zip(lines, tokens_of, strict=True):
                if tokens > max_tokens:
                    return CheckOutcome.fail(
                        f"{index}: problem {key} line {line} has {tokens} output tokens > "
                        f"{max_tokens}",
                        file=str(index),
                        line=line,
                        tokens=tokens,
                    )
                lengths[line] = tokens
    sample = set(random.Random(0).sample(sorted(lengths), min(TOKEN_SAMPLE, len(lengths))))
    counter = TokenCounter(tokenizer_path, num_threads=2)
    jsonl = dirs.jsonl(part.split)
    for number, _, row in iter_jsonl(jsonl):
        if number not in sample:
            continue
        texts = [row.get(field) for field in TEXT_FIELDS]
        if not all(isinstance(text, str) for text in texts):
            return CheckOutcome.fail(
                f"{jsonl}: line {number}: expected the text fields {', '.join(TEXT_FIELDS)}",
                file=str(jsonl),
                line=number,
            )
        instruction, problem_input, output = counter.count([str(text) for text in texts])
        total = instruction + problem_input + output
        if output != lengths[number] or total > max_tokens:
            return CheckOutcome.fail(
                f"{jsonl}: line {number} has {output} output tokens ({total} in all); the index "
                f"says {lengths[number]} (limit {max_tokens} in all)",
                file=str(jsonl),
                line=number,
                tokens=output,
                total=total,
                indexed=lengths[number],
            )
    return CheckOutcome.ok(
        f"{len(lengths):,} indexed output lengths <= {max_tokens}; {len(sample)} re-tokenized "
        "rows agree",
        max_indexed=max(lengths.values(), default=0),
    )


def counts_match_stats(dirs: DatasetDirs, part: Partition) -> CheckOutcome:
    """Rows and labels in the JSONL equal the stats file; JSONL SHA256 equals stats and index."""
    jsonl = dirs.jsonl(part.split)
    stats = _stats(dirs, part)
    header = read_header(dirs.problem_index(part.split))
    actual_sha = sha256_file(jsonl)
    if not (actual_sha == stats.jsonl_sha256 == header.jsonl_sha256):
        return CheckOutcome.fail(
            f"{jsonl}: SHA256 {actual_sha}, stats say {stats.jsonl_sha256}, index says "
            f"{header.jsonl_sha256}",
            file=str(jsonl),
            expected=stats.jsonl_sha256,
            found=actual_sha,
        )
    rows = correct = 0
    for _, _, row in iter_jsonl(jsonl):
        rows += 1
        correct += part.dataset != "codecontests" or bool(row.get("is_correct"))
    found = {"records": rows, "correct": correct, "incorrect": rows - correct}
    expected = {"records": stats.records, "correct": stats.correct, "incorrect": stats.incorrect}
    expected_index = {"records": header.records}
    if found != expected or rows != expected_index["records"]:
        return CheckOutcome.fail(
            f"{jsonl}: counted {found}, stats say {expected}, index says {header.records} records",
            file=str(jsonl),
            expected=expected,
            found=found,
        )
    return CheckOutcome.ok(f"{rows:,} rows ({correct:,} correct) match stats and index", **found)


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
    with open(dirs.jsonl(part.split), "rb") as fh:
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


def index_matches_records(dirs: DatasetDirs, part: Partition) -> CheckOutcome:
    """Each problem_index_map entry's indices point at records of that problem with that label,
    every JSONL line is indexed exactly once, the trainer's problem_id (its task_id pattern) of
    every record is the key it is indexed under, and the per-line ``metadata`` matches the line."""
    index = dirs.problem_index(part.split)
    header = read_header(index)
    fields = LineFields.of(RECORD_MODELS[part.dataset])
    problems: list[str] = []
    owner = array("i", [-1]) * header.records
    labels = array("b", [0]) * header.records
    for key, entry in iter_entries(index):
        problems.append(key)
        for is_correct, lines in ((1, entry.correct_indices), (0, entry.incorrect_indices)):
            for line in lines:
                if not 0 <= line < header.records or owner[line] != -1:
                    return CheckOutcome.fail(
                        f"{index}: problem {key} points at line {line}, out of range or "
                        "claimed twice",
                        file=str(index),
                        problem=key,
                        line=line,
                    )
                owner[line] = len(problems) - 1
                labels[line] = is_correct
    jsonl = dirs.jsonl(part.split)
    line_metadata = iter_line_metadata(index)
    for number, _, row in iter_jsonl(jsonl):
        if number >= header.records or owner[number] == -1:
            return CheckOutcome.fail(
                f"{jsonl}: line {number} is not in the index", file=str(jsonl), line=number
            )
        expected = problems[owner[number]]
        is_correct = bool(row.get("is_correct", True))
        found = {_problem_of(part.dataset, row), problem_id_of(row.get("task_id", ""))}
        if found != {expected} or is_correct != bool(labels[number]):
            return CheckOutcome.fail(
                f"{index}: line {number} indexed under {expected} "
                f"({'correct' if labels[number] else 'incorrect'}) but the record is "
                f"{sorted(found)} (is_correct={is_correct})",
                file=str(index),
                line=number,
                expected=expected,
                found=sorted(found),
            )
        stored, wanted = next(line_metadata, None), _line_metadata(row, fields)
        if stored != wanted:
            return CheckOutcome.fail(
                f"{index}: metadata[{number}] is {stored}, the line says {wanted}",
                file=str(index),
                line=number,
                expected=wanted,
                found=stored,
            )
    if next(line_metadata, None) is not None:
        return CheckOutcome.fail(
            f"{index}: more metadata entries than JSONL lines", file=str(index)
        )
    return CheckOutcome.ok(
        f"{len(problems):,} problems index all {header.records:,} lines; metadata aligned",
        problems=len(problems),
    )


def _rivals(part: Partition) -> list[Partition]:
    """The partitions whose problems must not appear in ``part``."""
    others = [Partition.parse(k) for k in PARTITION_KEYS if k != part.key]
    is_train = part.split == "train"
    if part.dataset == "codecontests":
        same = [p for p in others if p.dataset == "codecontests"]
        return same + ([p for p in others if p.split != "train"] if is_train else [])
    if is_train:
        return [p for p in others if p.split != "train"]
    return [p for p in others if p.split == "train"]


def _instructions(path: Path) -> dict[bytes, str]:
    return {_digest(row["instruction"]): row.get("task_id", "") for _, _, row in iter_jsonl(path)}


def splits_disjoint(layout: Layout, part: Partition) -> CheckOutcome:
    """No problem statement of this split appears in a split it must stay apart from (other
    CodeContests splits; train vs every evaluation split). Compared by exact instruction text;
    splits not materialized yet are skipped and listed."""
    dirs = layout.dataset(part.dataset)
    mine = _instructions(dirs.jsonl(part.split))
    compared: list[str] = []
    missing: list[str] = []
    for rival in _rivals(part):
        path = layout.dataset(rival.dataset).jsonl(rival.split)
        if not path.exists():
            missing.append(rival.key)
            continue
        compared.append(rival.key)
        for _, _, row in iter_jsonl(path):
            task_id = mine.get(_digest(row["instruction"]))
            if task_id is not None:
                return CheckOutcome.fail(
                    f"{part.key} {task_id} has the same problem statement as {rival.key} "
                    f"{row.get('task_id')}",
                    partition=part.key,
                    task_id=task_id,
                    other=f"{rival.key}:{row.get('task_id')}",
                )
    return CheckOutcome.ok(
        f"{len(mine):,} problem statements, none in {', '.join(compared) or 'no other split'}",
        compared=compared,
        not_materialized=missing,
    )


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
    stored = ((row["task_id"], None, row["metadata"]) for _, _, row in iter_jsonl(eval_jsonl))
    return _coverage(dirs, part, eval_jsonl, stored)


def eval_tests_cover_split(dirs: DatasetDirs, part: Partition) -> CheckOutcome:
    """``tests/<split>_tests.json`` holds every upstream problem of the split once, in order,
    under its problem key with its upstream name and test counts, and every training record's
    problem_id is one of its keys (not applicable outside CodeContests)."""
    _, tests_json = eval_outputs(part, dirs)
    if tests_json is None:
        return CheckOutcome.ok(f"not applicable: {part} has no tests file", applicable="no")
    stored = ((key, entry.task_name, entry.model_dump()) for key, entry in iter_tests(tests_json))
    return _coverage(dirs, part, tests_json, stored)


def trainer_path_of_dataset(layout: Layout, part: Partition) -> CheckOutcome:
    """``<root>/datasets/<dataset>`` (the trainer's path) is a relative link to the dataset's
    ``datasets_v2`` folder."""
    return trainer_path_resolves(*dataset_link(layout, part.dataset))
