"""Progress lines for the long in-process commands (``demo``, ``verify``), entry-point layer.

Contract: every line starts with the seconds since the command began; a line is printed when a
step finishes (by ``graph_runs``' progress logger), and a heartbeat naming the step still
running whenever nothing was printed for ``interval_s``, so the terminal is never silent longer
than that however long one step takes.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

HEARTBEAT_S = 5.0


class Progress:
    """Thread-safe progress printer with a heartbeat thread while it is entered."""

    def __init__(self, out: TextIO | None = None, interval_s: float = HEARTBEAT_S) -> None:
        self._out = out or sys.stdout
        self._interval_s = interval_s
        self._started = time.monotonic()
        self._last = self._started
        self._current = "starting"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="progress", daemon=True)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    def line(self, text: str) -> None:
        """Print ``text`` after the elapsed time."""
        with self._lock:
            self._last = time.monotonic()
            print(f"  [{self._last - self._started:5.0f}s] {text}", file=self._out, flush=True)

    def working_on(self, what: str) -> None:
        """Name what the heartbeat says is running (no line of its own)."""
        with self._lock:
            self._current = what

    def _beat(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                quiet = time.monotonic() - self._last >= self._interval_s
                current = self._current
            if quiet:
                self.line(f"... still running: {current}")

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
