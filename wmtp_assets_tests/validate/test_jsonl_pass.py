"""One read of a file for every check that needs its lines: lines, hash, and outcomes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from wmtp_assets.files import hashing
from wmtp_assets.files.hashing import sha256_file, shared_hashes
from wmtp_assets.validate.jsonl_pass import HashedLines, run_pass
from wmtp_assets.validate.outcome import CheckOutcome


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
@pytest.mark.parametrize("ending", [b"\n", b""])
def test_lines_and_hash_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, ending: bytes
) -> None:
    monkeypatch.setattr("wmtp_assets.validate.jsonl_pass.CHUNK", chunk)
    lines = [json.dumps({"n": n, "text": "é" * (n % 17)}).encode() for n in range(200)]
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join(lines) + ending)
    read = HashedLines(path)
    assert list(read) == lines
    assert read.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_hash_is_kept_for_the_steps_other_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a":1}\n{"a":2}\n')
    reads: list[str] = []
    real = hashing._read_sha256
    monkeypatch.setattr(hashing, "_read_sha256", lambda p: reads.append(str(p)) or real(p))
    with shared_hashes():
        list(HashedLines(path))
        assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert reads == []  # the seal did not read the file again
    unfinished = HashedLines(path)
    with shared_hashes():
        next(iter(unfinished))  # a reader that stops early records nothing
        sha256_file(path)
    assert reads == [str(path)]


class _Collect:
    """Fails on the line whose ``n`` equals ``fail_at``; else counts lines and remembers the
    hash it was given."""

    def __init__(self, fail_at: int = -1) -> None:
        self.fail_at, self.seen = fail_at, 0

    def line(self, number: int, raw: bytes, row: dict[str, Any]) -> CheckOutcome | None:
        self.seen += 1
        return CheckOutcome.fail(f"line {number}") if row["n"] == self.fail_at else None

    def end(self, lines: int, sha256: str) -> CheckOutcome:
        return CheckOutcome.ok(f"{lines} {sha256}")


def test_a_failing_check_stops_alone(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"".join(json.dumps({"n": n}).encode() + b"\n" for n in range(10)))
    early, full = _Collect(fail_at=3), _Collect()
    outcomes = run_pass(path, {"early": early, "full": full})
    assert outcomes["early"].summary == "line 3" and early.seen == 4
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert outcomes["full"].summary == f"10 {digest}" and full.seen == 10


def test_a_line_that_is_not_an_object_fails_every_check_naming_file_and_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"n": 0}\n[1]\n{"n": 2}\n')
    outcomes = run_pass(path, {"a": _Collect(), "b": _Collect()})
    for outcome in outcomes.values():
        assert not outcome.passed
        assert f"{path}: line 1 is not a JSON object" in outcome.summary
