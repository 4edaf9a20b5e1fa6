"""Reading the JSON files an artifact keeps (``metadata.json``, stats, configs, index lines) so
that a bad one is a one-line error naming the file and what was expected.

``json`` and pydantic errors name neither the file nor, in their first line, the field; a check
that reports them as is says "JSONDecodeError: Expecting value" about an unknown file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class InvalidJsonFileError(ValueError):
    """A stored JSON file that does not parse or does not have the expected shape."""

    def __init__(self, path: Path, expected: str, found: str) -> None:
        super().__init__(f"{path}: not {expected} ({found})")
        self.file = str(path)
        self.expected = expected
        self.found = found


def first_validation_error(exc: ValidationError) -> str:
    """``field.path: message`` of the first error (pydantic's own first line names neither)."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(document)"
    return f"{where}: {error['msg']}" + (
        f", {len(exc.errors())} errors" if len(exc.errors()) > 1 else ""
    )


def parse_json(data: bytes | str, path: Path, expected: str = "valid JSON") -> Any:
    """``data`` (read from ``path``) as JSON; ``InvalidJsonFileError`` naming ``path`` if not."""
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidJsonFileError(path, expected, str(exc)) from None


def read_json_object(path: Path, expected: str = "a JSON object") -> dict[str, Any]:
    """The JSON object stored at ``path`` (a missing file raises ``FileNotFoundError``)."""
    data = parse_json(path.read_bytes(), path, expected)
    if not isinstance(data, dict):
        raise InvalidJsonFileError(path, expected, f"a JSON {type(data).__name__}")
    return data


def validate_json(
    model: type[M], data: bytes | str | dict[str, Any], path: Path, expected: str = ""
) -> M:
    """``data`` (read from ``path``) as ``model``; errors name the file, ``expected`` (default:
    the model's name) and the first field."""
    expected = expected or f"a valid {model.__name__}"
    try:
        if isinstance(data, dict):
            return model.model_validate(data)
        return model.model_validate_json(data)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise InvalidJsonFileError(path, expected, exc.errors()[0]["msg"]) from None
        raise InvalidJsonFileError(path, expected, first_validation_error(exc)) from None


def read_json_model(model: type[M], path: Path, expected: str = "") -> M:
    """The file at ``path`` as ``model`` (a missing file raises ``FileNotFoundError``)."""
    return validate_json(model, path.read_bytes(), path, expected)
