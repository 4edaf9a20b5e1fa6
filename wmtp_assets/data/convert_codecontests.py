"""CodeContests row -> one record per Python solution, correct and incorrect, in one list.

Field mapping (all of it lives here):

* ``instruction`` = ``description``.
* ``input`` = ``""`` (``INPUT_LAYOUT`` below: the WMTP trainer's choice, shared with the
  evaluation prompts of ``eval_files``).
* ``output`` = the solution text, for each solution whose language is 1 (Python 2) or 3 (Python 3)
  in ``solutions`` (``is_correct: true``) and ``incorrect_solutions`` (``false``); other languages
  are counted as drop reason ``language``; a solution so labelled that does not parse as that
  Python (``data.python_syntax``) is dropped as ``not_python``.
* ``task_id`` = ``{problem_key}_correct_{i}`` / ``{problem_key}_incorrect_{i}``, ``i`` the
  solution's 0-based index in the upstream list (so ids are stable when other records are dropped).
* ``metadata`` = source, difficulty, has_tests, language, name, problem_key, cf_rating.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pyarrow as pa

from wmtp_assets.data.convert_base import (
    BadKeyError,
    Candidate,
    ConvertedProblem,
    disambiguate,
    text,
)
from wmtp_assets.data.problem_index import PROBLEM_ID_PATTERN, problem_id_of
from wmtp_assets.data.records import CodeContestsMetadata, CodeContestsRecord
from wmtp_assets.data.upstream_schema import CODECONTESTS_SCHEMA

PYTHON_LANGUAGES: dict[int, Literal["python2", "python3"]] = {1: "python2", 3: "python3"}
INPUT_LAYOUT = (
    "always '' (the WMTP trainer's own choice: the statement already holds the examples, and "
    "answers stay out of the prompt). The evaluation prompts (<split>_eval.jsonl) use '' too, so "
    "a model sees the same prompt layout in training and in evaluation. The public tests are in "
    "tests/<split>_tests.json and in each eval record's metadata; `has_tests` says whether a "
    "problem has any."
)

columns: Mapping[str, pa.DataType] = {
    name: CODECONTESTS_SCHEMA.field(name).type
    for name in (
        "name",
        "description",
        "public_tests",
        "source",
        "difficulty",
        "solutions",
        "incorrect_solutions",
        "cf_rating",
    )
}
key_column = "name"
key_rule = (
    "problem_key = upstream `name`; names repeat across sources, so in row order (shards in "
    "file-name order, then rows) the first problem keeps its name and each later one with the "
    "same name gets '#k' appended, k the smallest integer >= 2 not yet used as a key (e.g. "
    "'brcktsrm', 'brcktsrm#2'). task_id = '{problem_key}_correct_{i}' or "
    "'{problem_key}_incorrect_{i}', i the solution's 0-based index in upstream `solutions` / "
    "`incorrect_solutions`. Reading the trailing '_<i>' and then the '_correct'/'_incorrect' "
    "suffix recovers (problem_key, label, i), so task ids are unique within the split. The "
    f"trainer's problem_id (group 1 of {PROBLEM_ID_PATTERN.pattern}) is exactly the "
    "problem_key; a name it could not recover (empty, or with a line break) is an error."
)


def problem_keys(values: Sequence[str | None]) -> list[str]:
    keys = disambiguate(text(v) for v in values)
    for row, key in enumerate(keys):
        # The pattern is anchored and its suffix has no shorter match inside "_correct_0", so
        # group 1 is the key whenever ".+?" can span it: one probe covers every label and i.
        if problem_id_of(f"{key}_correct_0") != key:
            raise BadKeyError(
                row,
                f"problem name {key!r} is not recoverable from its task ids by the trainer's "
                f"pattern {PROBLEM_ID_PATTERN.pattern} (empty, or holds a line break)",
            )
    return keys


def convert(row: Mapping[str, Any], key: str) -> ConvertedProblem:
    instruction = text(row["description"])
    public_tests = row["public_tests"] or {}
    inputs, outputs = public_tests.get("input") or [], public_tests.get("output") or []
    if len(inputs) != len(outputs):
        raise ValueError(
            f"public_tests has {len(inputs)} inputs but {len(outputs)} outputs; they must pair up"
        )
    difficulty = row["difficulty"] or 0
    metadata = {
        code: CodeContestsMetadata(
            has_tests=bool(inputs),
            source=row["source"] or 0,
            difficulty=difficulty,
            language=language,
            name=text(row["name"]),
            problem_key=key,
            cf_rating=row["cf_rating"] or 0,
        )
        for code, language in PYTHON_LANGUAGES.items()
    }
    candidates: list[Candidate] = []
    language_drops = 0
    for column, label, is_correct in (
        ("solutions", "correct", True),
        ("incorrect_solutions", "incorrect", False),
    ):
        solutions = row[column] or {}
        languages, texts = solutions.get("language") or [], solutions.get("solution") or []
        if len(languages) != len(texts):
            raise ValueError(
                f"{column} has {len(languages)} languages but {len(texts)} solutions; "
                "they must be parallel lists"
            )
        for i, (language, solution) in enumerate(zip(languages, texts, strict=True)):
            if language not in metadata:
                language_drops += 1
                continue
            record = CodeContestsRecord(
                instruction=instruction,
                input="",
                output=text(solution),
                task_id=f"{key}_{label}_{i}",
                metadata=metadata[language],
                is_correct=is_correct,
            )
            candidates.append(Candidate(record, is_correct, syntax=PYTHON_LANGUAGES[language]))
    return ConvertedProblem(key, difficulty, instruction, "", candidates, language_drops)
