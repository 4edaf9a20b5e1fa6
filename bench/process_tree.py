"""A process tree's memory from ``/proc``, sampled in a thread while a benchmark runs.

``ru_maxrss`` does not serve: on Linux a child started by fork+exec inherits its parent's
high-water mark, and it says nothing of the processes alive together. Each benchmark subclasses
``TreeSampler`` and keeps the peaks of its own quantities from the ``status`` fields.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def status_kb(pid: int | str) -> dict[str, int]:
    """The kB fields of ``/proc/<pid>/status`` (``VmRSS``, ``RssAnon``, ...); ``{}`` once the
    process has ended."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the process just ended
        return {}
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        value = rest.split()
        if len(value) == 2 and value[1] == "kB":
            fields[name] = int(value[0])
    return fields


def descendants(root: int) -> list[int]:
    """Every living process below ``root`` (children, their children, ...), not ``root``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class TreeSampler(threading.Thread):
    """Calls ``sample`` with the ``status`` fields of ``root`` and of its descendants at start and
    every ``interval_s`` until ``stop``."""

    def __init__(self, root: int, interval_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root, self.interval_s = root, interval_s
        self._done = threading.Event()

    def run(self) -> None:
        while True:
            self.sample(status_kb(self.root), [status_kb(pid) for pid in descendants(self.root)])
            if self._done.wait(self.interval_s):
                return

    def sample(self, root: dict[str, int], children: list[dict[str, int]]) -> None:
        """Fold one sample into the subclass's peaks."""
        raise NotImplementedError

    def stop(self) -> None:
        self._done.set()
        self.join()
