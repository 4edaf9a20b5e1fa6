"""The filter of the pipeline: per candidate record, kept with its token counts or dropped with
the first reason (``data.pipeline``'s docstring: the order of the reasons and why)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from wmtp_assets.data.arrow_rows import has_invalid_text
from wmtp_assets.data.convert_base import ConvertedProblem
from wmtp_assets.data.python_syntax import parses_as
from wmtp_assets.data.stats import DropReason
from wmtp_assets.data.token_count import TokenCounter

Verdict = tuple[int, int] | DropReason
"""A kept record's ``(total tokens, output tokens)``, or why the candidate was dropped."""


def judge(
    problems: Sequence[ConvertedProblem],
    counter: TokenCounter,
    max_tokens: int,
    decoded_leniently: bool = False,
) -> list[list[Verdict]]:
    """Per problem, per candidate: ``(total tokens, output tokens)`` if kept, else the first
    drop reason.

    Two batched tokenizer calls: every instruction and input, then the outputs still undecided.
    ``decoded_leniently``: the batch held invalid UTF-8 (see ``arrow_rows``), so check for it.
    """
    shared_bad = [
        any(has_invalid_text(t, decoded_leniently) for t in (p.instruction, p.input, p.key))
        for p in problems
    ]
    good = [i for i, bad in enumerate(shared_bad) if not bad]
    texts = [t for i in good for t in (problems[i].instruction, problems[i].input)]
    counts = iter(counter.count_within(texts, [max_tokens] * len(texts)))
    shared: dict[int, int | None] = {}
    for i in good:
        instruction, problem_input = next(counts), next(counts)
        shared[i] = (
            None if instruction is None or problem_input is None else instruction + problem_input
        )

    verdicts: list[list[Verdict]] = []
    pending: list[tuple[int, int, int]] = []  # problem, candidate, tokens of instruction + input
    for i, problem in enumerate(problems):
        row: list[Verdict] = []
        used = shared.get(i)
        for j, candidate in enumerate(problem.candidates):
            output = candidate.record.output
            if (
                shared_bad[i]
                or has_invalid_text(output, decoded_leniently)
                or (decoded_leniently and not _serializable(candidate.record))
            ):
                row.append("invalid_text")
            elif not output.strip():
                row.append("empty")
            else:
                row.append("too_long")  # unless the output's count below fits
                if used is not None and used <= max_tokens:
                    pending.append((i, j, used))
        verdicts.append(row)
    outputs = [problems[i].candidates[j].record.output for i, j, _ in pending]
    budgets = [max_tokens - used for _, _, used in pending]
    for (i, j, used), n in zip(pending, counter.count_within(outputs, budgets), strict=True):
        if n is not None and used + n <= max_tokens:
            syntax = problems[i].candidates[j].syntax
            fits = syntax is None or parses_as(problems[i].candidates[j].record.output, syntax)
            verdicts[i][j] = (used + n, n) if fits else "not_python"
    return verdicts


def _serializable(record: BaseModel) -> bool:
    try:
        record.model_dump_json()
    except PydanticSerializationError:
        return False
    return True
