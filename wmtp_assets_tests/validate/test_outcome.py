"""Counts in check summaries read as English: "1 file", "2 files", "1,234 records"."""

from __future__ import annotations

import pytest

from wmtp_assets.validate.outcome import counted


@pytest.mark.parametrize(
    ("n", "expected"), [(0, "0 files"), (1, "1 file"), (2, "2 files"), (1234, "1,234 files")]
)
def test_counted_agrees_in_number(n: int, expected: str) -> None:
    assert counted(n, "file") == expected
