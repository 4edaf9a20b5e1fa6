from __future__ import annotations

import hashlib
import io
from pathlib import Path

from wmtp_assets.data.jsonl_writer import Concatenation, JsonlWriter
from wmtp_assets.data.records import HumanEvalMetadata, HumanEvalRecord


def _record(i: int) -> HumanEvalRecord:
    return HumanEvalRecord(
        instruction=f'def f{i}():\n    """é ☃"""\n',
        input="",
        output="    return 1\n",
        task_id=f"HumanEval/{i}",
        metadata=HumanEvalMetadata(has_tests=True, test="", entry_point=f"f{i}"),
    )


def test_lines_are_utf8_json_in_field_order() -> None:
    buffer = io.BytesIO()
    writer = JsonlWriter(buffer)
    assert [writer.write(_record(i)) for i in range(3)] == [0, 1, 2]
    data = buffer.getvalue()
    assert writer.lines == 3 and data.count(b"\n") == 3
    first = data.split(b"\n")[0].decode()
    assert first.startswith('{"instruction":"def f0():\\n    \\"\\"\\"é ☃')
    assert first.index('"task_id"') < first.index('"metadata"')


def test_concatenate_hashes_and_removes_parts(tmp_path: Path) -> None:
    parts = [tmp_path / "a", tmp_path / "b"]
    parts[0].write_bytes(b"1\n2\n")
    parts[1].write_bytes(b"3\n")
    out = io.BytesIO()
    joined = Concatenation(out, chunk_size=3)
    for part in parts:
        joined.append(part)
    assert joined.sha256 == hashlib.sha256(b"1\n2\n3\n").hexdigest()
    assert out.getvalue() == b"1\n2\n3\n" and not any(p.exists() for p in parts)
