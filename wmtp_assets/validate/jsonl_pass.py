"""One read of a stored file feeds every check that needs its lines.

A partition's JSONL is what the dataset checks read (the real CodeContests train split is
~4 GB): read once per check, and hashed once more for the seal, it cost 4.7x one pass that reads,
hashes and parses it. Here each file is read once: ``HashedLines`` yields its lines while a
worker thread hashes the same chunks (SHA256 releases the GIL), and records the hash in the
step's ``files.hashing.shared_hashes``, so the seal and ``counts_match_stats`` do not read it
again. ``run_pass`` parses each JSONL line once and hands it to every ``LineCheck`` still
running; a check that fails stops receiving lines, the others go on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from wmtp_assets.files.hashing import CHUNK, remember_sha256
from wmtp_assets.validate.outcome import CheckOutcome, guarded

K = TypeVar("K")


class HashedLines:
    """The lines of a file (without their ``\\n``), in order; once every line has been taken,
    ``sha256`` is the file's SHA256 (and the step's other checks reuse it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sha256: str | None = None
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        stat = os.stat(self.path)
        digest = hashlib.sha256()
        pending = b""
        with open(self.path, "rb", buffering=0) as fh, ThreadPoolExecutor(1, "sha256") as pool:
            while chunk := fh.read(CHUNK):
                hashed = pool.submit(digest.update, chunk)
                try:
                    lines = (pending + chunk).split(b"\n")
                    pending = lines.pop()
                    self.size += len(chunk)
                    yield from lines
                finally:
                    hashed.result()
        if pending:
            yield pending
        self.sha256 = digest.hexdigest()
        remember_sha256(self.path, stat, self.sha256)


class LineCheck(Protocol):
    """One check's share of a pass over a JSONL file."""

    def line(self, number: int, raw: bytes, row: dict[str, Any]) -> CheckOutcome | None:
        """Look at one line (``raw`` without its newline); a failure ends this check."""

    def end(self, lines: int, sha256: str) -> CheckOutcome:
        """The outcome after the last line: ``lines`` read, the file's SHA256."""


def parse_line(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    """One JSONL line as an object; a bad line raises naming the file and line."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {number} is not JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: line {number} is not a JSON object")
    return obj


def run_pass(path: Path, checks: Mapping[K, LineCheck]) -> dict[K, CheckOutcome]:
    """Every check's outcome after one read of ``path`` (each line parsed once). A line that is
    not a JSON object fails every check still running, naming the file and line."""
    outcomes: dict[K, CheckOutcome] = {}
    running = dict(checks)
    lines = HashedLines(path)

    def scan() -> CheckOutcome:
        count = 0
        for number, raw in enumerate(lines):
            count += 1
            if not running:
                continue  # nothing left to check: read on only for the hash
            row = parse_line(path, number, raw)
            for key, check in list(running.items()):
                failed = check.line(number, raw, row)
                if failed is not None:
                    outcomes[key] = failed
                    del running[key]
        assert lines.sha256 is not None
        for key, check in running.items():
            outcomes[key] = guarded(partial(check.end, count, lines.sha256))
        return CheckOutcome.ok("read")

    broken = guarded(scan)
    if not broken.passed:
        for key in checks:
            outcomes.setdefault(key, broken)
    return outcomes


def run_one(path: Path, check: LineCheck) -> CheckOutcome:
    """One check over its own pass (what the pure check functions do when called alone)."""
    return run_pass(path, {0: check})[0]
