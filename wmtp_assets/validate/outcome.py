"""The result every pure check returns: passed or not, one line why, and what a person needs
to see (expected vs found, the file, the first offending tensor or row)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

Severity = Literal["error", "warn"]


class CheckOutcome(BaseModel):
    passed: bool
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)
    severity: Severity = "error"
    """How bad a failure is: ``warn`` where nothing is known to be wrong, only not proven."""

    @classmethod
    def ok(cls, summary: str, **details: Any) -> CheckOutcome:
        return cls(passed=True, summary=summary, details=details)

    @classmethod
    def fail(cls, summary: str, severity: Severity = "error", **details: Any) -> CheckOutcome:
        return cls(passed=False, summary=summary, details=details, severity=severity)


def guarded(check: Callable[[], CheckOutcome]) -> CheckOutcome:
    """Run ``check``; a missing or unreadable file is a failed check naming it, not a crashed
    one (readers raise ``ValueError``s that start with the file's path). Any other exception
    (a library's own error type, such as ``SafetensorError``) is this check's failure too, in
    one line: the other checks of the step still run and report."""
    try:
        return check()
    except OSError as exc:
        if exc.filename is None:
            return CheckOutcome.fail(f"{type(exc).__name__}: {exc}", error=str(exc))
        what = "missing" if isinstance(exc, FileNotFoundError) else f"unreadable ({exc.strerror})"
        return CheckOutcome.fail(
            f"{exc.filename}: {what}; this check expects the file the asset publishes "
            "(rematerialize it)",
            file=str(exc.filename),
            error=str(exc),
        )
    except Exception as exc:  # one check's failure, whatever raised it
        first = str(exc).splitlines()[0] if str(exc) else ""
        return CheckOutcome.fail(f"{type(exc).__name__}: {first}", error=str(exc))


def counted(n: int, noun: str) -> str:
    """``"1 file"``, ``"3 files"``: a count in a summary line, in the right number."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
