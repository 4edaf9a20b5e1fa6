"""What every dataset converter produces, and the problem-key rules they share.

A converter turns one upstream row (one problem) into a ``ConvertedProblem``: the instruction and
input shared by all its records (tokenized once by the pipeline), and one ``Candidate`` per
solution in a kept language. The pipeline then decides which candidates survive the text and
length filters; converters hold *all* field mapping and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from wmtp_assets.data.python_syntax import Dialect
from wmtp_assets.data.records import AlpacaRecord


class BadKeyError(ValueError):
    """An upstream row whose key column cannot give a unique key (``row``: 0-based in the split)."""

    def __init__(self, row: int, message: str) -> None:
        super().__init__(message)
        self.row = row


@dataclass(frozen=True, slots=True)
class Candidate:
    """A record before filtering, and its label for the problem index."""

    record: AlpacaRecord
    is_correct: bool
    syntax: Dialect | None = None
    """The language the output claims to be, checked by parsing (``data.python_syntax``); None
    where the converter's source is that language by construction (not parsed)."""


@dataclass(frozen=True, slots=True)
class ConvertedProblem:
    """One upstream row. Every candidate's ``instruction``/``input`` are these same strings."""

    key: str
    difficulty: int | None
    instruction: str
    input: str
    candidates: Sequence[Candidate]
    language_drops: int
    """Solutions skipped because of their language (counted as drop reason ``language``)."""


class Converter(Protocol):
    """The contract of ``convert_<dataset>`` modules (see ``converters.CONVERTERS``)."""

    columns: Mapping[str, pa.DataType]
    """The upstream columns read, with their upstream types: nothing else is read or checked."""
    key_column: str
    """The column the problem keys are made from (read alone, for the whole split, up front)."""
    key_rule: str
    """How problem keys and task ids are made, in words (copied into ``schema.json``)."""

    def problem_keys(self, values: Sequence[Any]) -> list[str]:
        """Unique keys for the split's rows, given ``key_column`` in row order."""
        ...

    def convert(self, row: Mapping[str, Any], key: str) -> ConvertedProblem:
        """Map one upstream row; raise ``ValueError`` on a malformed row."""
        ...


def disambiguate(names: Iterable[str]) -> list[str]:
    """Unique keys for possibly repeated names, deterministic in row order.

    The first row with a name keeps it; each later row with the same name gets ``name#k`` with the
    smallest ``k >= 2`` not yet taken (also by a real name such as ``"x#2"``), so keys are unique
    and stable for a given row order.
    """
    taken: set[str] = set()
    next_suffix: dict[str, int] = {}
    keys: list[str] = []
    for name in names:
        key = name
        if key in taken:
            k = next_suffix.get(name, 2)
            while f"{name}#{k}" in taken:
                k += 1
            next_suffix[name] = k + 1
            key = f"{name}#{k}"
        taken.add(key)
        keys.append(key)
    return keys


def require_unique(keys: Sequence[str | None]) -> list[str]:
    """``keys`` unchanged, or ``BadKeyError`` at the first null, empty or repeated one."""
    first_row: dict[str, int] = {}
    for row, key in enumerate(keys):
        if not key:
            raise BadKeyError(row, f"task id is {key!r}")
        if key in first_row:
            raise BadKeyError(row, f"task id {key!r} repeats the one of split row {first_row[key]}")
        first_row[key] = row
    return list(first_row)


def text(value: str | None) -> str:
    """Upstream nullable text as a string (null reads as empty)."""
    return value or ""
