"""Human-readable progress of long transfers: byte counts and rates, every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable

Progress = Callable[[str], None]
"""Receives one human-readable message at a time (Dagster's ``context.log.info``, ``print``)."""


def format_bytes(size: float) -> str:
    """``1.5 GiB``-style sizes for progress messages."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    index = 0
    while abs(size) >= 1024 and index < len(units) - 1:
        size /= 1024
        index += 1
    return f"{size:.0f} B" if index == 0 else f"{size:.1f} {units[index]}"


class ProgressMeter:
    """Turns a stream of byte counts into a progress message every ``interval_s`` and at the end."""

    def __init__(
        self, progress: Progress, label: str, total: int | None, interval_s: float = 5.0
    ) -> None:
        self._progress = progress
        self._label = label
        self._total = total
        self._interval_s = interval_s
        self._done = 0
        self._started = time.monotonic()
        self._last_report = self._started
        self._finished = False

    def advance(self, n: int) -> None:
        """Count ``n`` more bytes (negative when a download restarts from scratch)."""
        self._done += n
        now = time.monotonic()
        if now - self._last_report >= self._interval_s:
            self._last_report = now
            self._report(now)

    def finish(self) -> None:
        """Report the final count and the mean rate, once."""
        if not self._finished:
            self._finished = True
            self._report(time.monotonic())

    def _report(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-6)
        of_total = f" of {format_bytes(self._total)}" if self._total is not None else ""
        self._progress(
            f"{self._label}: {format_bytes(self._done)}{of_total}"
            f" ({format_bytes(self._done / elapsed)}/s)"
        )
