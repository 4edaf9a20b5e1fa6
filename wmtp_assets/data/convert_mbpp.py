"""MBPP (config ``full``) row -> one record: the task and its reference solution.

Field mapping, as the WMTP trainer's own ``setup_datasets.py`` writes MBPP rows (its formats,
not ours to change): ``instruction`` = ``text`` followed by
``"\n\nThe function should be named '<name>'."``, ``<name>`` the first ``assert <name>(`` of
``test_list[0]`` (``text`` unchanged when there is none); ``input`` = ``""``; ``output`` = ``code``;
``task_id`` = the upstream integer ``task_id`` as a string (``"601"``); ``metadata`` =
test_list, test_setup_code, challenge_test_list, has_tests. MBPP has no difficulty; every record
is a reference solution (indexed as correct).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from wmtp_assets.data.convert_base import Candidate, ConvertedProblem, require_unique, text
from wmtp_assets.data.records import MbppMetadata, MbppRecord
from wmtp_assets.data.upstream_schema import MBPP_SCHEMA

columns: Mapping[str, pa.DataType] = {field.name: field.type for field in MBPP_SCHEMA}
key_column = "task_id"
key_rule = (
    "task_id = problem_key = the upstream integer task_id as a decimal string, e.g. '601' (the "
    "WMTP trainer's str(task_id); unique upstream, a repeated id is an error)."
)
FUNCTION_NAME = re.compile(r"assert\s+(\w+)\s*\(")
"""The trainer's rule for the function name: the first match anywhere in ``test_list[0]``."""


def problem_keys(values: Sequence[int | None]) -> list[str]:
    return require_unique([None if v is None else str(v) for v in values])


def instruction_of(task: str, tests: Sequence[str]) -> str:
    """``text`` with the sentence naming the function the tests call, as the trainer writes it."""
    match = FUNCTION_NAME.search(tests[0]) if tests else None
    if match is None:
        return task
    return f"{task}\n\nThe function should be named '{match.group(1)}'."


def convert(row: Mapping[str, Any], key: str) -> ConvertedProblem:
    tests = [text(t) for t in row["test_list"] or []]
    record = MbppRecord(
        instruction=instruction_of(text(row["text"]), tests),
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
