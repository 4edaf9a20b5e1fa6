"""Failing the N-th filesystem step of a publish, as a kill or as a full disk, in-process.

The steps are the calls that make writes durable or visible: ``os.fsync``, ``os.replace`` and
``os.unlink`` (``Path.unlink`` and ``Path.replace`` go through them). ``"enospc"`` makes the
N-th one raise ``OSError(ENOSPC)`` and lets the code clean up as it would on a full disk;
``"sigkill"`` makes it raise :class:`Killed`, fails every later step too and turns
``Staging.discard`` off, so the disk is left exactly as a SIGKILL at that point would leave it.
"""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Callable
from typing import Any

import pytest

from wmtp_assets.files.staging import Staging

STEPS = ("fsync", "replace", "unlink")


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no ``except Exception`` handler swallows it."""


def fail_at(monkeypatch: pytest.MonkeyPatch, n: int, kind: str) -> Callable[[], int]:
    """Make step ``n`` fail as ``kind`` (``n`` 0: never); return how many steps ran so far."""
    counter = itertools.count(1)
    calls = [0]
    killed = [False]

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            calls[0] = next(counter)
            if killed[0]:
                raise Killed("after the kill")
            if calls[0] == n:
                if kind == "sigkill":
                    killed[0] = True
                    raise Killed(f"step {n}")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(*args, **kwargs)

        return step

    for name in STEPS:
        monkeypatch.setattr(os, name, wrap(getattr(os, name)))
    if kind == "sigkill":
        monkeypatch.setattr(Staging, "discard", lambda self: None)
    return lambda: calls[0]


def count_steps(run: Callable[[], object]) -> int:
    """How many steps ``run`` takes when nothing fails."""
    with pytest.MonkeyPatch.context() as patch:
        calls = fail_at(patch, 0, "count")
        run()
        return calls()
