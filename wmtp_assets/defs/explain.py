"""``explained``: the one decorator every asset body runs under, so each step says why it failed
and which settings it ran with.

A core error becomes a ``dg.Failure`` whose description is one line (the core message, which
names the file, field or variable and what was expected and found) plus, when a setting is the
likely cause, a hint naming that setting, its value and where the value came from. Its metadata
holds ``file``, ``expected`` and ``found`` (``file`` from the error's attribute or the name its
message starts with, as core messages do; ``expected``/``found`` where the error carries them)
and the error type, so the run page shows the cause without "View full message".

The failure is chained to the original error (its stack stays one click away) except for source
errors: ``sources/`` raises them unchained so nothing the Hub client held (a token in a header)
reaches a chain, and the failure keeps it that way.

A successful step's results each get a ``settings`` table (setting, value, origin).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import dagster as dg

from wmtp_assets.data.pipeline import NothingKeptError
from wmtp_assets.defs.metadata import setting_origins, settings_table
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.files.tokenizer_identity import TokenizerMismatchError
from wmtp_assets.settings import ENV_VARS, SettingsError
from wmtp_assets.sources import SourceAuthError, SourceError

F = TypeVar("F", bound=Callable[..., Any])


def _hint(exc: Exception, wmtp: WmtpResource, origins: dict[str, str]) -> str | None:
    """The setting to look at for this error, with its value and origin; None if no setting."""

    def setting(field: str) -> str:
        value = getattr(wmtp, field)
        return f"{ENV_VARS[field]}={value if value is not None else '(unset)'} ({origins[field]})"

    if isinstance(exc, TokenizerMismatchError) and exc.found is not None:
        return (
            f"WMTP_TOKENIZER_SHA256 comes from {origins['tokenizer_sha256']}; set it (environment "
            "or <root>/wmtp_settings.json) to the SHA256 of the tokenizer this root should use"
        )
    if isinstance(exc, SourceAuthError):
        return "set HF_TOKEN in the environment to a token with access to the repo"
    if isinstance(exc, SourceError):
        if wmtp.mirror is None:
            return f"upstream files come from the Hub ({setting('mirror')}); set it for a mirror"
        return f"upstream files come from {setting('mirror')}"
    if isinstance(exc, NothingKeptError):
        return f"the token limit is {setting(exc.setting)}; raise it"
    if isinstance(exc, SettingsError):
        return "fix or unset the variable or file named above"
    return None


def _where(exc: Exception, message: str) -> str | None:
    """The file or name the error is about: its ``file`` attribute, else its message's prefix."""
    file = getattr(exc, "file", None)
    if file:
        return str(file)
    head, sep, _ = message.partition(": ")
    return head if sep else None


def as_failure(exc: Exception, wmtp: WmtpResource, origins: dict[str, str]) -> dg.Failure:
    """The ``dg.Failure`` a person reads for ``exc`` (see the module docstring)."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    hint = _hint(exc, wmtp, origins)
    metadata: dict[str, dg.MetadataValue] = {
        "error_type": dg.MetadataValue.text(type(exc).__name__)
    }
    fields = {
        "file": _where(exc, message),
        "expected": getattr(exc, "expected", None),
        "found": getattr(exc, "found", None),
    }
    metadata |= {k: dg.MetadataValue.text(str(v)) for k, v in fields.items() if v is not None}
    if hint:
        metadata["hint"] = dg.MetadataValue.text(hint)
    return dg.Failure(
        description=f"{message} Hint: {hint}." if hint else message, metadata=metadata
    )


def _with_settings(result: object, table: dg.MetadataValue) -> object:
    if isinstance(result, dg.MaterializeResult):
        return result._replace(metadata={**(result.metadata or {}), "settings": table})
    return result


@contextlib.contextmanager
def _failures_explained(wmtp: WmtpResource, origins: dict[str, str]) -> Iterator[None]:
    try:
        yield
    except (dg.Failure, dg.DagsterError):
        raise
    except SourceError as exc:
        raise as_failure(exc, wmtp, origins) from None
    except Exception as exc:
        raise as_failure(exc, wmtp, origins) from exc


def _resource_and_origins(kwargs: dict[str, Any]) -> tuple[WmtpResource, dict[str, str]]:
    wmtp: WmtpResource = kwargs["wmtp"]
    run_config = dg.AssetExecutionContext.get().run.run_config
    return wmtp, setting_origins(wmtp, run_config)


def explained(fn: F) -> F:
    """Wrap an asset body (a function or a generator with a ``wmtp`` resource parameter)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Iterator[object]:
            wmtp, origins = _resource_and_origins(kwargs)
            table = settings_table(wmtp.settings, origins)
            with _failures_explained(wmtp, origins):
                for result in fn(*args, **kwargs):
                    yield _with_settings(result, table)

        return generator  # type: ignore[return-value]

    @functools.wraps(fn)
    def function(*args: Any, **kwargs: Any) -> object:
        wmtp, origins = _resource_and_origins(kwargs)
        with _failures_explained(wmtp, origins):
            result = fn(*args, **kwargs)
        return _with_settings(result, settings_table(wmtp.settings, origins))

    return function  # type: ignore[return-value]
