"""``processed/<split>_metadata.json``: the problem index the trainer's pair sampler reads.

For each problem with at least one kept record (keyed by its problem key, in row order): its
difficulty (``null`` for MBPP/HumanEval) and, per label, the **0-based** line numbers of its
records in ``<split>.jsonl`` and their token lengths (parallel lists, ascending lines). The header
names the JSONL with its SHA256 and record count, so a reader can prove the pair belongs together.

The file is one JSON object (``ProblemIndex``) laid out one problem per line, so it is written and
read as a stream (``iter_entries``) and never needs the split's millions of line numbers as Python
objects: the builder keeps them in ``array('I')`` (8 bytes per kept record)::

    {"dataset": ..., "split": ..., "jsonl": ..., "jsonl_sha256": ..., "records": N, "line_numbers": "0-based", "problems": {
    "<key>":{"difficulty":7,"correct":{"lines":[0,1],"token_lengths":[812,790]},"incorrect":{...}},
    ...
    }}
"""  # noqa: E501

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelledLines(_Model):
    lines: list[int] = Field(description="0-based line numbers in <split>.jsonl, ascending")
    token_lengths: list[int] = Field(description="tokens(instruction+input+output), same order")


class ProblemEntry(_Model):
    difficulty: int | None
    correct: LabelledLines
    incorrect: LabelledLines


class IndexHeader(_Model):
    dataset: str
    split: str
    jsonl: str = Field(description="file name of the JSONL in the same folder")
    jsonl_sha256: str
    records: int = Field(description="lines in the JSONL")
    line_numbers: Literal["0-based"] = "0-based"


class ProblemIndex(IndexHeader):
    """The whole file, as one model (for ``schema.json`` and for small splits)."""

    problems: dict[str, ProblemEntry]


def _lines() -> array[int]:
    return array("I")


@dataclass
class _Entry:
    key: str
    difficulty: int | None
    lines: tuple[array[int], array[int]] = field(default_factory=lambda: (_lines(), _lines()))
    lengths: tuple[array[int], array[int]] = field(default_factory=lambda: (_lines(), _lines()))

    def shifted(self, offset: int) -> _Entry:
        correct, incorrect = (array("I", (n + offset for n in a)) for a in self.lines)
        return _Entry(self.key, self.difficulty, (correct, incorrect), self.lengths)

    def to_json(self) -> str:
        body = {
            "difficulty": self.difficulty,
            **{
                label: {"lines": self.lines[i].tolist(), "token_lengths": self.lengths[i].tolist()}
                for label, i in (("correct", 0), ("incorrect", 1))
            },
        }
        return json.dumps({self.key: body}, ensure_ascii=False, separators=(",", ":"))[1:-1]


@dataclass
class IndexBuilder:
    """Collects kept records in line order; ``extend`` appends a later shard's index."""

    entries: list[_Entry] = field(default_factory=list)

    def add(
        self, key: str, difficulty: int | None, is_correct: bool, line: int, tokens: int
    ) -> None:
        """Register a written record; records of one problem must be added consecutively."""
        if not self.entries or self.entries[-1].key != key:
            self.entries.append(_Entry(key, difficulty))
        label = 0 if is_correct else 1
        entry = self.entries[-1]
        entry.lines[label].append(line)
        entry.lengths[label].append(tokens)

    def extend(self, other: IndexBuilder, line_offset: int) -> None:
        """Append ``other``, whose lines count from 0, as if it started at ``line_offset``."""
        self.entries.extend(e.shifted(line_offset) for e in other.entries)

    def write(self, fh: BinaryIO, header: IndexHeader) -> None:
        head = header.model_dump_json()
        fh.write(f'{head[:-1]},"problems":{{\n'.encode())
        last = len(self.entries) - 1
        for i, entry in enumerate(self.entries):
            fh.write((entry.to_json() + (",\n" if i < last else "\n")).encode())
        fh.write(b"}}\n")


def read_header(path: Path) -> IndexHeader:
    """The header fields, reading only the first line."""
    with open(path, "rb") as fh:
        return IndexHeader.model_validate(_parse_head(fh.readline(), path))


def iter_entries(path: Path) -> Iterator[tuple[str, ProblemEntry]]:
    """Stream ``(problem key, entry)`` pairs in file order, one line at a time."""
    with open(path, "rb") as fh:
        _parse_head(fh.readline(), path)
        for line in fh:
            if line.strip() == b"}}":
                return
            ((key, body),) = json.loads(b"{" + line.rstrip(b",\r\n") + b"}").items()
            yield key, ProblemEntry.model_validate(body)
    raise ValueError(f"{path}: truncated problem index (no closing line)")


def _parse_head(line: bytes, path: Path) -> dict[str, object]:
    try:
        head = json.loads(line + b"}}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a problem index written by this module: {exc}") from exc
    head.pop("problems", None)
    return head
