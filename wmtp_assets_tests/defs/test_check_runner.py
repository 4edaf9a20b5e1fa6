"""The checks of one dataset step: one read per shared file, the seals reuse its hash, every
outcome keyed by its check, the others in parallel."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from wmtp_assets.defs.check_runner import CheckInput, CheckSpec, run_step_checks
from wmtp_assets.files import hashing
from wmtp_assets.files.hashing import sha256_file, shared_hashes
from wmtp_assets.validate import dataset_checks, sealed
from wmtp_assets.validate.outcome import CheckOutcome

A, B = dg.AssetKey(["datasets", "a"]), dg.AssetKey(["datasets", "b"])


class _Lines:
    def __init__(self) -> None:
        self.lines = 0

    def line(self, number: int, raw: bytes, row: dict[str, Any]) -> CheckOutcome | None:
        self.lines += 1
        return None

    def end(self, lines: int, sha256: str) -> CheckOutcome:
        return CheckOutcome.ok(f"{lines} lines, {sha256}")


def _given(spec: CheckSpec) -> CheckInput:
    return None  # type: ignore[return-value]  # the bodies here read nothing from it


def test_shared_pass_then_seals_from_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"n":1}\n{"n":2}\n{"n":3}\n')
    reads: list[str] = []
    real = hashing._read_sha256
    monkeypatch.setattr(hashing, "_read_sha256", lambda p: reads.append(str(p)) or real(p))
    shares = [_Lines(), _Lines()]
    threads: set[str] = set()

    def plain(_: CheckInput) -> CheckOutcome:
        threads.add(threading.current_thread().name)
        return CheckOutcome.ok("plain")

    def seal(_: CheckInput) -> CheckOutcome:
        return CheckOutcome.ok(sha256_file(path))

    specs = [
        CheckSpec(A, "seal", seal, sealed, partitioned=True),
        CheckSpec(
            A, "one", plain, dataset_checks, partitioned=True, share=lambda _: (path, shares[0])
        ),
        CheckSpec(
            B, "one", plain, dataset_checks, partitioned=True, share=lambda _: (path, shares[1])
        ),
        CheckSpec(B, "plain", plain, dataset_checks, partitioned=True),
    ]
    with shared_hashes():
        outcomes = run_step_checks(specs, _given)
    digest = sha256_file(path)
    assert outcomes[dg.AssetCheckKey(A, "one")].summary == f"3 lines, {digest}"
    assert outcomes[dg.AssetCheckKey(B, "one")].summary == f"3 lines, {digest}"
    assert [s.lines for s in shares] == [3, 3]
    assert outcomes[dg.AssetCheckKey(A, "seal")].summary == digest
    assert reads == [str(path)]  # only the unshared call after the step; the seal reused it
    assert outcomes[dg.AssetCheckKey(B, "plain")].passed
    assert threads and all(t.startswith("check") for t in threads)  # on the pool


def test_a_share_that_cannot_be_planned_fails_alone(tmp_path: Path) -> None:
    missing = tmp_path / "absent_metadata.json"

    def unplannable(_: CheckInput) -> tuple[Path, _Lines]:
        raise FileNotFoundError(2, "No such file or directory", str(missing))

    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"n":1}\n')
    specs = [
        CheckSpec(A, "bad", lambda _: CheckOutcome.ok("-"), dataset_checks, share=unplannable),
        CheckSpec(
            A,
            "good",
            lambda _: CheckOutcome.ok("-"),
            dataset_checks,
            share=lambda _: (path, _Lines()),
        ),
    ]
    with shared_hashes():
        outcomes = run_step_checks(specs, _given)
    bad = outcomes[dg.AssetCheckKey(A, "bad")]
    assert not bad.passed and str(missing) in bad.summary and "missing" in bad.summary
    assert outcomes[dg.AssetCheckKey(A, "good")].summary.startswith("1 lines")
