"""``datasets_local_small/<dataset>_small/<split>_small.jsonl``: a small, deterministic sample.

At most ``TRAIN_LIMIT`` records for ``train`` and ``OTHER_LIMIT`` for other splits. Labels come
from the problem index (not from parsing millions of JSON lines): half the sample from correct and
half from incorrect records where both exist (topping up from the other label when one is short),
each part a ``random.Random(seed)`` sample, not the first N. The chosen lines are copied byte for
byte, in line order, while the whole JSONL is hashed: a JSONL that does not match the index's
``jsonl_sha256``/``records`` (a half-published split) raises instead of producing a subset.
"""

from __future__ import annotations

import hashlib
import random
from array import array
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from wmtp_assets.data.partitions import Partition
from wmtp_assets.data.problem_index import iter_entries, read_header
from wmtp_assets.files.atomic import atomic_open
from wmtp_assets.files.layout import DatasetDirs

TRAIN_LIMIT = 100
OTHER_LIMIT = 32
SMALL_LIMITS = {"train": TRAIN_LIMIT, "other splits": OTHER_LIMIT}


class IndexMismatchError(ValueError):
    """The processed JSONL is not the one its problem index describes."""


class SmallSubsetReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partition: str
    path: Path
    records: int
    correct: int
    incorrect: int
    seed: int
    source_jsonl_sha256: str


def small_limit(split: str) -> int:
    return TRAIN_LIMIT if split == "train" else OTHER_LIMIT


def select_lines(
    correct: Sequence[int], incorrect: Sequence[int], limit: int, seed: int
) -> tuple[list[int], list[int]]:
    """Seeded samples of correct and incorrect line numbers, together at most ``limit``, as
    balanced as the labels allow; each list sorted."""
    k = min(limit, len(correct) + len(incorrect))
    n_incorrect = min(len(incorrect), k // 2)
    n_correct = min(len(correct), k - n_incorrect)
    n_incorrect = min(len(incorrect), k - n_correct)
    rng = random.Random(seed)
    return sorted(rng.sample(correct, n_correct)), sorted(rng.sample(incorrect, n_incorrect))


def build_small_subset(
    partition: Partition | str, dirs: DatasetDirs, *, seed: int = 0, limit: int | None = None
) -> SmallSubsetReport:
    """Write the split's small subset from its published JSONL and index (atomically)."""
    part = partition if isinstance(partition, Partition) else Partition.parse(partition)
    index_path, jsonl = dirs.problem_index(part.split), dirs.jsonl(part.split)
    header = read_header(index_path)
    correct, incorrect = array("I"), array("I")
    for _, entry in iter_entries(index_path):
        correct.extend(entry.correct_indices)
        incorrect.extend(entry.incorrect_indices)
    chosen_correct, chosen_incorrect = select_lines(
        correct, incorrect, small_limit(part.split) if limit is None else limit, seed
    )
    chosen = sorted(chosen_correct + chosen_incorrect)
    dest = dirs.small_jsonl(part.split)
    digest, lines = hashlib.sha256(), 0
    with atomic_open(dest) as out, open(jsonl, "rb") as fh:
        wanted = iter(chosen)
        next_line = next(wanted, None)
        for line in fh:
            digest.update(line)
            if lines == next_line:
                out.write(line)
                next_line = next(wanted, None)
            lines += 1
        if lines != header.records or digest.hexdigest() != header.jsonl_sha256:
            raise IndexMismatchError(
                f"{jsonl} ({lines} lines, SHA256 {digest.hexdigest()}) is not the file "
                f"{index_path} describes ({header.records} lines, SHA256 {header.jsonl_sha256})"
            )
    return SmallSubsetReport(
        partition=part.key,
        path=dest,
        records=len(chosen),
        correct=len(chosen_correct),
        incorrect=len(chosen_incorrect),
        seed=seed,
        source_jsonl_sha256=header.jsonl_sha256,
    )
