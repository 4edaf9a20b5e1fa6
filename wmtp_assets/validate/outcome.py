"""The result every pure check returns: passed or not, one line why, and what a person needs
to see (expected vs found, the file, the first offending tensor or row)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field


class CheckOutcome(BaseModel):
    passed: bool
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def ok(cls, summary: str, **details: Any) -> CheckOutcome:
        return cls(passed=True, summary=summary, details=details)

    @classmethod
    def fail(cls, summary: str, **details: Any) -> CheckOutcome:
        return cls(passed=False, summary=summary, details=details)


def guarded(check: Callable[[], CheckOutcome]) -> CheckOutcome:
    """Run ``check``; a missing or unreadable file is a failed check, not a crashed one."""
    try:
        return check()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        return CheckOutcome.fail(f"{type(exc).__name__}: {exc}", error=str(exc))
