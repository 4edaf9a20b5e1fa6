"""HumanEval row -> one record: the prompt and its canonical solution.

Field mapping: ``instruction`` = ``prompt``, ``input`` = ``""``, ``output`` =
``canonical_solution``, ``task_id`` = upstream ``task_id`` (``HumanEval/0`` ...), ``metadata`` =
test, entry_point, has_tests. No difficulty; every record is indexed as correct.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from wmtp_assets.data.convert_base import Candidate, ConvertedProblem, require_unique, text
from wmtp_assets.data.records import HumanEvalMetadata, HumanEvalRecord
from wmtp_assets.data.upstream_schema import HUMANEVAL_SCHEMA

columns: Mapping[str, pa.DataType] = {field.name: field.type for field in HUMANEVAL_SCHEMA}
key_column = "task_id"
key_rule = "task_id = problem_key = upstream `task_id` (unique upstream; a repeat is an error)."


def problem_keys(values: Sequence[str | None]) -> list[str]:
    return require_unique(values)


def convert(row: Mapping[str, Any], key: str) -> ConvertedProblem:
    test = text(row["test"])
    record = HumanEvalRecord(
        instruction=text(row["prompt"]),
        input="",
        output=text(row["canonical_solution"]),
        task_id=key,
        metadata=HumanEvalMetadata(
            has_tests=bool(test.strip()), test=test, entry_point=text(row["entry_point"])
        ),
    )
    return ConvertedProblem(key, None, record.instruction, "", [Candidate(record, True)], 0)
