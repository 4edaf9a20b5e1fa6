"""``processed/<split>_metadata.json``: the problem index, in the shape the WMTP trainer reads.

The trainer (REFERENCE §6) loads this file with ``json.load`` and reads:

* ``problem_index_map``: ``{problem_id: {"difficulty", "correct_indices", "incorrect_indices",
  "correct_token_lengths", "incorrect_token_lengths"}}``, in split row order. Indices are
  **0-based** line numbers of ``<split>.jsonl`` (ascending); a token length is
  ``len(sp.encode(output))`` of that record's ``output`` alone (Llama-2 SentencePiece, no
  BOS/EOS); ``problem_id`` is group 1 of ``PROBLEM_ID_PATTERN`` applied to the record's
  ``task_id`` (the whole ``task_id`` when it does not match: MBPP and HumanEval).
  Datasets whose records have no ``is_correct`` (MBPP, HumanEval) index every record, a
  reference solution, under ``correct_indices``; ``difficulty`` is ``null`` for them.
* ``metadata``: one object per JSONL line, in line order: ``is_correct`` and ``difficulty``
  where the record has them (CodeContests), and always ``problem_id``.
* ``stats``: ``total``, ``correct``, ``incorrect`` (index labels), ``difficulty_dist`` (lines
  per difficulty), ``has_is_correct``, ``has_difficulty``, ``has_problem_id``, ``n_problems``,
  ``n_valid_problems`` (with both labels), ``total_possible_pairs`` (sum of correct x incorrect).
* ``source_file``: the JSONL, relative to the storage root.

Beside those, the header names the JSONL with its SHA256 and record count, so a reader can prove
the pair belongs together. The file is one JSON document laid out one problem (then one line's
metadata) per text line, so it is written and read back as a stream; the writer keeps only the
problem map (``array('I')``, 8 bytes per record) and derives the per-line ``metadata`` from it
(a problem's records are consecutive lines), never a per-line list::

    {"dataset": ..., "records": N, ..., "stats": {...}, "problem_index_map": {
    "<id>":{"difficulty":7,"correct_indices":[0,1],...,"incorrect_token_lengths":[]},
    ...
    },"metadata":[
    {"is_correct":true,"difficulty":7,"problem_id":"<id>"},
    ...
    ]}
"""

from __future__ import annotations

import json
import re
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field

from wmtp_assets.files.json_files import parse_json, validate_json

PROBLEM_ID_PATTERN = re.compile(r"^(.+?)_(correct|incorrect)_\d+$")
"""The trainer's rule: ``problem_id`` is group 1 of this pattern applied to ``task_id``."""

_MAP_END = b'},"metadata":['
_END = b"]}"


def problem_id_of(task_id: str) -> str:
    """The trainer's ``problem_id`` of a ``task_id`` (the ``task_id`` itself when no match)."""
    match = PROBLEM_ID_PATTERN.match(task_id)
    return match.group(1) if match else task_id


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemEntry(_Model):
    difficulty: int | None
    correct_indices: list[int] = Field(description="0-based lines of <split>.jsonl, ascending")
    incorrect_indices: list[int]
    correct_token_lengths: list[int] = Field(description="len(sp.encode(output)), same order")
    incorrect_token_lengths: list[int]


class LineMetadata(_Model):
    """One JSONL line; fields the record does not have are left out."""

    is_correct: bool | None = None
    difficulty: int | None = None
    problem_id: str


class IndexStats(_Model):
    total: int
    correct: int
    incorrect: int
    difficulty_dist: dict[str, int] = Field(description="lines per difficulty")
    has_is_correct: bool
    has_difficulty: bool
    has_problem_id: bool
    n_problems: int
    n_valid_problems: int = Field(description="problems with correct and incorrect records")
    total_possible_pairs: int


class IndexHeader(_Model):
    dataset: str
    split: str
    jsonl: str = Field(description="file name of the JSONL in the same folder")
    jsonl_sha256: str
    records: int = Field(description="lines in the JSONL")
    line_numbers: Literal["0-based"] = "0-based"
    source_file: str = Field(description="the JSONL, relative to the storage root")
    stats: IndexStats


class ProblemIndex(IndexHeader):
    """The whole file, as one model (for ``schema.json`` and for small splits)."""

    problem_index_map: dict[str, ProblemEntry]
    metadata: list[LineMetadata]


@dataclass(frozen=True)
class LineFields:
    """Which per-line fields a dataset's records carry (CodeContests: both)."""

    is_correct: bool
    difficulty: bool

    @classmethod
    def of(cls, record_model: type[BaseModel]) -> LineFields:
        """Read from the record model: a top-level ``is_correct``, a ``metadata.difficulty``."""
        metadata = record_model.model_fields["metadata"].annotation
        assert isinstance(metadata, type) and issubclass(metadata, BaseModel)
        return cls(
            is_correct="is_correct" in record_model.model_fields,
            difficulty="difficulty" in metadata.model_fields,
        )


def _ints() -> array[int]:
    return array("I")


@dataclass
class _Entry:
    key: str
    difficulty: int | None
    lines: tuple[array[int], array[int]] = field(default_factory=lambda: (_ints(), _ints()))
    lengths: tuple[array[int], array[int]] = field(default_factory=lambda: (_ints(), _ints()))

    def shifted(self, offset: int) -> _Entry:
        correct, incorrect = (array("I", (n + offset for n in a)) for a in self.lines)
        return _Entry(self.key, self.difficulty, (correct, incorrect), self.lengths)

    @property
    def size(self) -> int:
        return len(self.lines[0]) + len(self.lines[1])

    def map_line(self) -> str:
        body = {
            "difficulty": self.difficulty,
            "correct_indices": self.lines[0].tolist(),
            "incorrect_indices": self.lines[1].tolist(),
            "correct_token_lengths": self.lengths[0].tolist(),
            "incorrect_token_lengths": self.lengths[1].tolist(),
        }
        return json.dumps({self.key: body}, ensure_ascii=False, separators=(",", ":"))[1:-1]

    def metadata_lines(self, fields: LineFields) -> Iterator[bytes]:
        """The per-line metadata of this problem's records, in line order."""
        encoded = []
        for is_correct in (True, False):
            line = LineMetadata(
                is_correct=is_correct if fields.is_correct else None,
                difficulty=self.difficulty if fields.difficulty else None,
                problem_id=self.key,
            )
            encoded.append(line.model_dump_json(exclude_none=True).encode())
        first = min(a[0] for a in self.lines if a)
        labels = [b""] * self.size
        for label, lines in enumerate(self.lines):
            for n in lines:
                if not 0 <= n - first < len(labels) or labels[n - first]:
                    raise ValueError(f"problem {self.key!r}: its lines are not consecutive")
                labels[n - first] = encoded[label]
        yield from labels


@dataclass
class IndexBuilder:
    """Collects kept records in line order; ``extend`` appends a later unit's index."""

    entries: list[_Entry] = field(default_factory=list)
    _keys: set[str] = field(default_factory=set)

    def add(
        self, key: str, difficulty: int | None, is_correct: bool, line: int, output_tokens: int
    ) -> None:
        """Register a written record; records of one problem must be added consecutively."""
        if not self.entries or self.entries[-1].key != key:
            self._new_entry(_Entry(key, difficulty))
        label = 0 if is_correct else 1
        entry = self.entries[-1]
        entry.lines[label].append(line)
        entry.lengths[label].append(output_tokens)

    def extend(self, other: IndexBuilder, line_offset: int) -> None:
        """Append ``other``, whose lines count from 0, as if it started at ``line_offset``."""
        for entry in other.entries:
            self._new_entry(entry.shifted(line_offset))

    def _new_entry(self, entry: _Entry) -> None:
        if entry.key in self._keys:
            raise ValueError(f"problem {entry.key!r} indexed twice (its records must be adjacent)")
        self._keys.add(entry.key)
        self.entries.append(entry)

    def stats(self, fields: LineFields) -> IndexStats:
        """The ``stats`` block, from the problem map alone."""
        correct = sum(len(e.lines[0]) for e in self.entries)
        incorrect = sum(len(e.lines[1]) for e in self.entries)
        difficulty: Counter[str] = Counter()
        if fields.difficulty:
            for e in self.entries:
                difficulty[str(e.difficulty)] += e.size
        return IndexStats(
            total=correct + incorrect,
            correct=correct,
            incorrect=incorrect,
            difficulty_dist=dict(difficulty),
            has_is_correct=fields.is_correct,
            has_difficulty=fields.difficulty,
            has_problem_id=True,
            n_problems=len(self.entries),
            n_valid_problems=sum(bool(e.lines[0]) and bool(e.lines[1]) for e in self.entries),
            total_possible_pairs=sum(len(e.lines[0]) * len(e.lines[1]) for e in self.entries),
        )

    def write(self, fh: BinaryIO, header: IndexHeader, fields: LineFields) -> None:
        """Write the whole file; ``header.records`` must be the number of indexed lines."""
        if header.records != sum(e.size for e in self.entries):
            raise ValueError(f"{header.jsonl}: {header.records} lines, but the index has others")
        head = header.model_dump_json()
        fh.write(f'{head[:-1]},"problem_index_map":{{\n'.encode())
        _write_joined(fh, (e.map_line().encode() for e in self.entries))
        fh.write(_MAP_END + b"\n")
        _write_joined(fh, (line for e in self.entries for line in e.metadata_lines(fields)))
        fh.write(_END + b"\n")


def _write_joined(fh: BinaryIO, items: Iterator[bytes]) -> None:
    """One item per line, separated by commas (JSON members or array elements)."""
    previous = None
    for item in items:
        if previous is not None:
            fh.write(previous + b",\n")
        previous = item
    if previous is not None:
        fh.write(previous + b"\n")


def read_header(path: Path) -> IndexHeader:
    """The header fields (with ``stats``), reading only the first line."""
    with open(path, "rb") as fh:
        return validate_json(IndexHeader, _parse_head(fh.readline(), path), path)


def iter_entries(path: Path) -> Iterator[tuple[str, ProblemEntry]]:
    """Stream ``(problem_id, entry)`` pairs in file order, one line at a time."""
    with open(path, "rb") as fh:
        _parse_head(fh.readline(), path)
        for line in fh:
            if line.rstrip() == _MAP_END:
                return
            ((key, body),) = parse_json(b"{" + line.rstrip(b",\r\n") + b"}", path).items()
            yield key, validate_json(ProblemEntry, body, path)
    raise ValueError(f"{path}: truncated problem index (no end of problem_index_map)")


def iter_line_metadata(path: Path) -> Iterator[dict[str, Any]]:
    """Stream the per-line ``metadata`` objects, in line order."""
    with open(path, "rb") as fh:
        for line in fh:
            if line.rstrip() == _MAP_END:
                break
        else:
            raise ValueError(f"{path}: no metadata array (not a problem index of this layout)")
        for line in fh:
            if line.rstrip() == _END:
                return
            yield json.loads(line.rstrip(b",\r\n"))
    raise ValueError(f"{path}: truncated problem index (no end of metadata)")


def _parse_head(line: bytes, path: Path) -> dict[str, object]:
    try:
        head: dict[str, object] = json.loads(line + b"}}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a problem index written by this module: {exc}") from exc
    head.pop("problem_index_map", None)
    return head
