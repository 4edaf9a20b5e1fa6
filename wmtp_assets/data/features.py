"""``datasets.Features`` of the JSON files we write, derived from the pydantic models writing them.

``schema.json`` records them (``Features.to_dict()``), so a user loads any processed split or
evaluation file with ``datasets.load_dataset("json", data_files=..., features=
Features.from_dict(schema["features"][...]))`` and gets exactly our column types, not inferred
ones. Mapping: ``str`` and string ``Literal`` -> ``string``, ``int`` -> ``int64``, ``bool`` ->
``bool``, ``float`` -> ``float64``, ``list[X]`` -> ``List(X)``, a nested model -> a struct of its
fields; ``X | None`` -> ``X`` (Arrow columns are nullable).
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel


def features_of(model: type[BaseModel]) -> dict[str, Any]:
    """``Features.to_dict()`` of ``model``'s JSON rows."""
    # Imported here: ``datasets`` takes over a second to import, and the pipeline's worker
    # processes import this package without ever needing it.
    from datasets import Features

    fields = {name: _feature(f.annotation) for name, f in model.model_fields.items()}
    return Features(fields).to_dict()


def _feature(annotation: Any) -> Any:
    from datasets import List, Value

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _feature(inner)
    if origin is typing.Literal:
        values = typing.get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return Value("string")
    if origin is list:
        (item,) = typing.get_args(annotation)
        return List(_feature(item))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {name: _feature(f.annotation) for name, f in annotation.model_fields.items()}
    simple = {str: "string", bool: "bool", int: "int64", float: "float64"}
    if annotation in simple:
        return Value(simple[annotation])
    raise TypeError(f"no datasets feature for field type {annotation!r}")
