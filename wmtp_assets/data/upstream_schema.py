"""The Arrow schemas of the upstream parquet files, and the check that a file still has them.

These schemas are the single source of truth for both sides: the converters declare which of
these columns they read, and ``wmtp_assets.demo.dataset_mirror`` writes its files with exactly
these schemas. Types are those of the Hub parquet files (``datasets`` ``ClassLabel`` columns such
as CodeContests ``source``/``difficulty``/``language`` are stored as integers).

The check compares *kinds* (string, integer, float, bool, list of kind, struct of named kinds),
so an int32 written as int64, a ``large_string`` or a list field named ``element`` instead of
``item`` pass, while a column that became a string, a list that became a scalar, or a struct that
lost a field fail with the file and column named. Only the columns a converter reads are checked:
a change elsewhere cannot affect the output.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


class UpstreamSchemaError(ValueError):
    """An upstream parquet file lacks a needed column or has it with another type."""


def _tests() -> pa.DataType:
    return pa.struct([("input", pa.list_(pa.string())), ("output", pa.list_(pa.string()))])


def _solutions() -> pa.DataType:
    return pa.struct([("language", pa.list_(pa.int64())), ("solution", pa.list_(pa.string()))])


CODECONTESTS_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("description", pa.string()),
        ("public_tests", _tests()),
        ("private_tests", _tests()),
        ("generated_tests", _tests()),
        ("source", pa.int64()),
        ("difficulty", pa.int64()),
        ("solutions", _solutions()),
        ("incorrect_solutions", _solutions()),
        ("cf_contest_id", pa.int64()),
        ("cf_index", pa.string()),
        ("cf_points", pa.float32()),
        ("cf_rating", pa.int32()),
        ("cf_tags", pa.list_(pa.string())),
        ("is_description_translated", pa.bool_()),
        ("untranslated_description", pa.string()),
        ("time_limit", pa.struct([("seconds", pa.int64()), ("nanos", pa.int64())])),
        ("memory_limit_bytes", pa.int64()),
        ("input_file", pa.string()),
        ("output_file", pa.string()),
    ]
)

MBPP_SCHEMA = pa.schema(
    [
        ("task_id", pa.int32()),
        ("text", pa.string()),
        ("code", pa.string()),
        ("test_list", pa.list_(pa.string())),
        ("test_setup_code", pa.string()),
        ("challenge_test_list", pa.list_(pa.string())),
    ]
)

HUMANEVAL_SCHEMA = pa.schema(
    [
        ("task_id", pa.string()),
        ("prompt", pa.string()),
        ("canonical_solution", pa.string()),
        ("test", pa.string()),
        ("entry_point", pa.string()),
    ]
)


def kind(data_type: pa.DataType) -> Any:
    """A comparable description of ``data_type`` that ignores width and list field names."""
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "string"
    if pa.types.is_integer(data_type):
        return "integer"
    if pa.types.is_floating(data_type):
        return "float"
    if pa.types.is_boolean(data_type):
        return "bool"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return ("list", kind(data_type.value_type))
    if pa.types.is_struct(data_type):
        return ("struct", tuple(sorted((f.name, kind(f.type)) for f in data_type)))
    return str(data_type)


def check_columns(path: Path, expected: Mapping[str, pa.DataType]) -> None:
    """Raise ``UpstreamSchemaError`` naming ``path`` and the column unless every expected column
    is present once with the expected kind. Reads only the parquet footer."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise UpstreamSchemaError(f"{path}: not a readable parquet file: {exc}") from exc
    for name, data_type in expected.items():
        indices = schema.get_all_field_indices(name)
        if not indices:
            raise UpstreamSchemaError(
                f"{path}: missing column {name!r} (expected {data_type}); "
                f"columns present: {schema.names}"
            )
        if len(indices) > 1:
            raise UpstreamSchemaError(f"{path}: column {name!r} appears {len(indices)} times")
        actual = schema.field(indices[0]).type
        if kind(actual) != kind(data_type):
            raise UpstreamSchemaError(
                f"{path}: column {name!r} has type {actual}, expected {data_type}"
            )
