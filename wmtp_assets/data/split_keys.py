"""The problem keys of a split, in split row order, made from the key column alone.

Every output that names problems (the training JSONL's task ids, the problem index, the
evaluation files) takes its keys from here, so the same upstream row gets the same key in each
(CodeContests names repeat, and the ``#k`` disambiguation depends on the whole split's order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from wmtp_assets.data.arrow_rows import to_rows
from wmtp_assets.data.convert_base import BadKeyError, Converter


class DataError(ValueError):
    """Upstream data that cannot be converted; the message names the file and row."""


def read_problem_keys(
    files: Sequence[Path],
    converter: Converter,
    opener: Callable[[Path], pq.ParquetFile] = pq.ParquetFile,
) -> list[str]:
    """Keys of every row of ``files`` (in the order given), reading only ``key_column`` of each
    file as ``opener`` opens it (the pipeline's opener hashes the whole file in the same read)."""
    origins: list[tuple[Path, int]] = []
    values: list[object] = []
    for file in files:
        rows, _ = to_rows(opener(file).read(columns=[converter.key_column]))
        origins += [(file, r) for r in range(len(rows))]
        values += [row[converter.key_column] for row in rows]
    try:
        return converter.problem_keys(values)
    except BadKeyError as exc:
        file, row = origins[exc.row]
        raise DataError(f"{file}: row {row}: column {converter.key_column!r}: {exc}") from exc
