from __future__ import annotations

import io
import json
from pathlib import Path

from wmtp_assets.data.problem_index import (
    IndexBuilder,
    IndexHeader,
    ProblemIndex,
    iter_entries,
    read_header,
)


def _header(records: int) -> IndexHeader:
    return IndexHeader(
        dataset="d", split="s", jsonl="s.jsonl", jsonl_sha256="0" * 64, records=records
    )


def test_written_file_is_one_json_document_and_streams_back(tmp_path: Path) -> None:
    first, second = IndexBuilder(), IndexBuilder()
    first.add("a", 7, True, 0, 100)
    first.add("a", 7, False, 1, 90)
    first.add('b "quoted"', 1, True, 2, 80)
    second.add("é#2", None, False, 0, 50)
    first.extend(second, 3)
    path = tmp_path / "s_metadata.json"
    with open(path, "wb") as fh:
        first.write(fh, _header(4))
    whole = ProblemIndex.model_validate_json(path.read_bytes())
    assert whole.line_numbers == "0-based"
    assert list(whole.problems) == ["a", 'b "quoted"', "é#2"]
    assert whole.problems["a"].correct.lines == [0] and whole.problems[
        "a"
    ].incorrect.token_lengths == [90]
    assert whole.problems["é#2"].incorrect.lines == [3] and whole.problems["é#2"].difficulty is None
    assert dict(iter_entries(path)) == whole.problems
    assert read_header(path) == _header(4)


def test_empty_index() -> None:
    buffer = io.BytesIO()
    IndexBuilder().write(buffer, _header(0))
    assert json.loads(buffer.getvalue())["problems"] == {}
