"""``datasets`` features of the JSON files we write, derived from the pydantic models writing them.

``schema.json`` records them in the form ``datasets.Features.to_dict()`` gives, so a user loads
any processed split or evaluation file with ``datasets.load_dataset("json", data_files=...,
features=datasets.Features.from_dict(schema["features"][...]))`` and gets exactly our column
types, not inferred ones. Mapping: ``str`` and string ``Literal`` -> ``string``, ``int`` ->
``int64``, ``bool`` -> ``bool``, ``float`` -> ``float64``, ``list[X]`` -> ``List(X)``, a nested
model -> a struct of its fields; ``X | None`` -> ``X`` (Arrow columns are nullable).

Written out, not built with ``datasets`` itself: that library is not a runtime dependency (a
heavy install and a second and a half to import in every worker); the tests load every file we
write with the real ``datasets`` and these features (``datasets>=4``, which has ``List``).
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

_VALUES: dict[Any, str] = {str: "string", bool: "bool", int: "int64", float: "float64"}


def features_of(model: type[BaseModel]) -> dict[str, Any]:
    """``Features.to_dict()`` of ``model``'s JSON rows."""
    return {name: _feature(f.annotation) for name, f in model.model_fields.items()}


def _value(dtype: str) -> dict[str, str]:
    return {"dtype": dtype, "_type": "Value"}


def _feature(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _feature(inner)
    if origin is typing.Literal and all(isinstance(v, str) for v in typing.get_args(annotation)):
        return _value("string")
    if origin is list:
        (item,) = typing.get_args(annotation)
        return {"feature": _feature(item), "_type": "List"}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return features_of(annotation)
    if annotation in _VALUES:
        return _value(_VALUES[annotation])
    raise TypeError(f"no datasets feature for field type {annotation!r}")
