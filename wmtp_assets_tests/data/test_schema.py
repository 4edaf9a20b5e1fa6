from __future__ import annotations

import json
from pathlib import Path

import pytest

from wmtp_assets.data import convert_codecontests
from wmtp_assets.data.schema import build_schema, write_schema
from wmtp_assets.files.layout import Layout


def test_codecontests_schema() -> None:
    schema = build_schema("codecontests", "ab" * 32, 2048)
    assert schema["fields"] == [
        "instruction",
        "input",
        "output",
        "task_id",
        "metadata",
        "is_correct",
    ]
    assert set(schema["required_fields"]) == set(schema["fields"])
    properties = schema["record_json_schema"]["properties"]
    assert properties["is_correct"]["type"] == "boolean"
    assert schema["filter"]["tokenizer_sha256"] == "ab" * 32
    assert schema["filter"]["max_tokens"] == 2048
    assert set(schema["filter"]["drop_reasons"]) == {
        "language",
        "invalid_text",
        "empty",
        "not_python",
        "too_long",
    }
    assert "#2" in schema["task_id"]
    assert "0-based" in schema["problem_index"]["line_numbers"]
    assert schema["input_layout"] == convert_codecontests.INPUT_LAYOUT
    assert schema["input_layout"].startswith("always ''")


@pytest.mark.parametrize("dataset", ["mbpp", "humaneval"])
def test_other_schemas_have_no_is_correct(dataset: str) -> None:
    schema = build_schema(dataset, "ab" * 32, 512)
    assert "is_correct" not in schema["required_fields"]
    assert schema["input_layout"].startswith("always ''")


def test_written_atomically(tmp_path: Path) -> None:
    path = write_schema(Layout(tmp_path).dataset("mbpp"), "mbpp", "ab" * 32, 2048)
    assert path.name == "schema.json" and json.loads(path.read_text())["dataset"] == "mbpp"
