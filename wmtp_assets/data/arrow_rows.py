"""Arrow record batches -> Python rows, surviving invalid UTF-8 in string columns.

Parquet does not guarantee that ``string`` columns hold valid UTF-8, and ``to_pylist`` raises on
the first bad byte, which would lose the whole split to one bad solution. The fast path is plain
``to_pylist``; only a batch that fails it is re-read as binary and decoded with
``surrogateescape``, so each bad byte becomes a lone surrogate that ``has_invalid_text`` detects
and the pipeline counts as drop reason ``invalid_text``. Valid text decodes identically either way.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

_SURROGATE = re.compile("[\ud800-\udfff]")


def _binary_type(data_type: pa.DataType) -> pa.DataType:
    if pa.types.is_string(data_type):
        return pa.binary()
    if pa.types.is_large_string(data_type):
        return pa.large_binary()
    if pa.types.is_list(data_type):
        return pa.list_(_binary_type(data_type.value_type))
    if pa.types.is_large_list(data_type):
        return pa.large_list(_binary_type(data_type.value_type))
    if pa.types.is_struct(data_type):
        return pa.struct([f.with_type(_binary_type(f.type)) for f in data_type])
    return data_type


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


def to_rows(batch: pa.RecordBatch | pa.Table) -> tuple[list[dict[str, Any]], bool]:
    """The rows as dicts, and whether any string held invalid UTF-8 (then decoded as above)."""
    try:
        return batch.to_pylist(), False
    except UnicodeDecodeError:
        schema = pa.schema([f.with_type(_binary_type(f.type)) for f in batch.schema])
        return [_decode(row) for row in batch.cast(schema).to_pylist()], True


def has_invalid_text(value: str, decoded_leniently: bool) -> bool:
    """A NUL character, or (only possible after the lenient decode) a byte that was not UTF-8."""
    return "\x00" in value or (decoded_leniently and _SURROGATE.search(value) is not None)
