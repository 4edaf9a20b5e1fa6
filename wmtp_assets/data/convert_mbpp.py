"""MBPP (config ``full``) row -> one record: the task and its reference solution.

Field mapping: ``instruction`` = ``text``, ``input`` = ``""``, ``output`` = ``code``,
``task_id`` = ``mbpp_{task_id}``, ``metadata`` = test_list, test_setup_code, challenge_test_list,
has_tests. MBPP has no difficulty; every record is a reference solution (indexed as correct).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from wmtp_assets.data.convert_base import Candidate, ConvertedProblem, require_unique, text
from wmtp_assets.data.records import MbppMetadata, MbppRecord
from wmtp_assets.data.upstream_schema import MBPP_SCHEMA

columns: Mapping[str, pa.DataType] = {field.name: field.type for field in MBPP_SCHEMA}
key_column = "task_id"
key_rule = (
    "task_id = problem_key = 'mbpp_{upstream integer task_id}' (unique upstream; a repeated id "
    "is an error)."
)


def problem_keys(values: Sequence[int | None]) -> list[str]:
    return require_unique([None if v is None else f"mbpp_{v}" for v in values])


def convert(row: Mapping[str, Any], key: str) -> ConvertedProblem:
    tests = [text(t) for t in row["test_list"] or []]
    record = MbppRecord(
        instruction=text(row["text"]),
        input="",
        output=text(row["code"]),
        task_id=key,
        metadata=MbppMetadata(
            has_tests=bool(tests),
            test_list=tests,
            test_setup_code=text(row["test_setup_code"]),
            challenge_test_list=[text(t) for t in row["challenge_test_list"] or []],
        ),
    )
    return ConvertedProblem(key, None, record.instruction, "", [Candidate(record, True)], 0)
