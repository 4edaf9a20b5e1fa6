"""The training records written to ``processed/<split>.jsonl``, one pydantic model per dataset.

Each JSONL line is ``model.model_dump_json()`` of one of these models, so the key order is the
field order below (base fields, then ``is_correct`` for CodeContests) and ``schema.json`` is
generated from the same classes. Every field is required; unknown fields are rejected.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordMetadata(_Strict):
    """Per-dataset details beside the Alpaca fields (subclassed per dataset)."""

    has_tests: bool = Field(description="whether the record carries tests it can be checked with")


class AlpacaRecord(_Strict):
    """The Alpaca fields every dataset shares."""

    instruction: str = Field(description="the problem statement")
    input: str = Field(description="extra context for the instruction; '' when none")
    output: str = Field(description="the solution code")
    task_id: str = Field(min_length=1, description="unique within the split")
    metadata: RecordMetadata


class CodeContestsMetadata(RecordMetadata):
    has_tests: bool = Field(description="the problem has at least one public test")
    source: int = Field(description="upstream `source` (0 unknown, 1 CodeChef, 2 Codeforces, ...)")
    difficulty: int = Field(description="upstream `difficulty` class (0 unknown, 1 easy, ...)")
    language: Literal["python2", "python3"] = Field(description="upstream language 1 or 3")
    name: str = Field(description="upstream problem `name` (not unique across sources)")
    problem_key: str = Field(description="the problem's unique key in the split (see task_id)")
    cf_rating: int = Field(description="upstream Codeforces rating, 0 when unknown")


class CodeContestsRecord(AlpacaRecord):
    """One Python solution, correct or incorrect, of one CodeContests problem."""

    metadata: CodeContestsMetadata
    is_correct: bool = Field(
        description="from upstream `solutions` (true) or `incorrect_solutions`"
    )


class MbppMetadata(RecordMetadata):
    has_tests: bool = Field(description="`test_list` is not empty")
    test_list: list[str] = Field(description="assert statements the solution must pass")
    test_setup_code: str = Field(description="code to run before the tests ('' when none)")
    challenge_test_list: list[str] = Field(description="harder extra asserts (often empty)")


class MbppRecord(AlpacaRecord):
    """One MBPP task with its reference solution."""

    metadata: MbppMetadata


class HumanEvalMetadata(RecordMetadata):
    has_tests: bool = Field(description="`test` is not blank")
    test: str = Field(description="the `check(candidate)` test code")
    entry_point: str = Field(description="name of the function the tests call")


class HumanEvalRecord(AlpacaRecord):
    """One HumanEval task with its canonical solution (the body that completes the prompt)."""

    metadata: HumanEvalMetadata


RECORD_MODELS: dict[str, type[AlpacaRecord]] = {
    "codecontests": CodeContestsRecord,
    "mbpp": MbppRecord,
    "humaneval": HumanEvalRecord,
}
