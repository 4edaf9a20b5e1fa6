"""``guarded``: whatever one check raises is that check's failed outcome, in one line; counts in
check summaries read as English ("1 file", "2 files", "1,234 records")."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors import SafetensorError

from wmtp_assets.validate.outcome import CheckOutcome, counted, guarded


def test_a_library_error_fails_its_check_in_one_line() -> None:
    """Issue 18 (8): an exception outside ValueError/OSError (safetensors' own) must not crash
    the step and with it every other check."""

    def check() -> CheckOutcome:
        raise SafetensorError("Error while deserializing header: invalid offset\nmore detail")

    outcome = guarded(check)
    assert not outcome.passed
    assert outcome.summary == "SafetensorError: Error while deserializing header: invalid offset"


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    outcome = guarded(lambda: CheckOutcome.ok(str((tmp_path / "gone.json").read_text())))
    assert not outcome.passed and outcome.details["file"] == str(tmp_path / "gone.json")


@pytest.mark.parametrize(
    ("n", "expected"), [(0, "0 files"), (1, "1 file"), (2, "2 files"), (1234, "1,234 files")]
)
def test_counted_agrees_in_number(n: int, expected: str) -> None:
    assert counted(n, "file") == expected
