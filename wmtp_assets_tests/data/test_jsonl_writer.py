from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from wmtp_assets.data.jsonl_writer import Concatenation, JsonlWriter
from wmtp_assets.data.records import HumanEvalMetadata, HumanEvalRecord
from wmtp_assets.data.staging import Staging


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


def test_staging_publishes_in_order_after_retracting(tmp_path: Path) -> None:
    data, seal = tmp_path / "x.jsonl", tmp_path / "x_stats.json"
    data.write_text("old")
    seal.write_text("old seal")
    with Staging() as staging:
        staging.stage(data).write_text("new")
        staging.scratch(data).write_text("part")
        staging.publish(retract=[seal])
    assert data.read_text() == "new" and not seal.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jsonl"]


def test_staging_discards_everything_on_error(tmp_path: Path) -> None:
    dest = tmp_path / "x.jsonl"
    with pytest.raises(RuntimeError), Staging() as staging:
        staging.stage(dest).write_text("half")
        staging.scratch(dest).write_text("part")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
