from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wmtp_assets.data import convert_codecontests
from wmtp_assets.data.upstream_schema import (
    CODECONTESTS_SCHEMA,
    UpstreamSchemaError,
    check_columns,
    kind,
)
from wmtp_assets.demo.dataset_mirror import codecontests_row, write_codecontests_parquet


def _table() -> pa.Table:
    row = codecontests_row("p", "d", solutions=[(3, "print(1)")])
    return pa.Table.from_pylist([row], schema=CODECONTESTS_SCHEMA)


def test_demo_writer_uses_the_upstream_schema(tmp_path: Path) -> None:
    path = write_codecontests_parquet(tmp_path / "t.parquet", [codecontests_row("p", "d")])
    assert pq.read_schema(path).remove_metadata() == CODECONTESTS_SCHEMA
    check_columns(path, convert_codecontests.columns)


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(_table().drop_columns(["incorrect_solutions"]), path)
    with pytest.raises(
        UpstreamSchemaError, match=r"train-00000-of-00001\.parquet.*'incorrect_solutions'"
    ):
        check_columns(path, convert_codecontests.columns)


@pytest.mark.parametrize(
    ("column", "new_type"),
    [
        ("difficulty", pa.string()),
        (
            "solutions",
            pa.struct([("language", pa.list_(pa.string())), ("solution", pa.list_(pa.string()))]),
        ),
        ("public_tests", pa.list_(pa.string())),
        ("description", pa.list_(pa.string())),
    ],
)
def test_changed_type_names_file_and_column(
    tmp_path: Path, column: str, new_type: pa.DataType
) -> None:
    table = _table()
    index = table.schema.get_field_index(column)
    table = table.set_column(index, column, pa.nulls(len(table), new_type))
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    with pytest.raises(UpstreamSchemaError, match=rf"bad\.parquet: column '{column}' has type"):
        check_columns(path, convert_codecontests.columns)


def test_width_and_list_field_names_do_not_matter() -> None:
    assert kind(pa.int32()) == kind(pa.int64())
    assert kind(pa.large_string()) == kind(pa.string())
    assert kind(pa.list_(pa.field("element", pa.string()))) == kind(pa.large_list(pa.string()))
    assert kind(pa.string()) != kind(pa.binary())


def test_unread_columns_are_not_checked(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(_table().drop_columns(["private_tests", "generated_tests"]), path)
    check_columns(path, convert_codecontests.columns)


def test_not_parquet(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_text("<html>rate limited</html>")
    with pytest.raises(UpstreamSchemaError, match="not a readable parquet"):
        check_columns(path, convert_codecontests.columns)
