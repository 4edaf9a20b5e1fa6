"""``processed/schema.json``: the contract of a dataset's processed files, generated from code.

The record, index and evaluation JSON Schemas and the ``datasets`` features come from the
pydantic models the writers use; the prose (field mapping, task ids, ``input`` layout, filter
rule) comes from the converter modules and ``stats.DROP_RULES``. Nothing here is typed twice,
so the file cannot drift from what the pipeline writes. The file depends on the tokenizer and
``max_tokens`` in force, which every split's stats file also records.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from wmtp_assets.data import convert_codecontests, eval_files
from wmtp_assets.data.converters import CONVERTERS
from wmtp_assets.data.eval_files import EvalProblem, ProblemTests
from wmtp_assets.data.features import features_of
from wmtp_assets.data.problem_index import ProblemIndex
from wmtp_assets.data.records import RECORD_MODELS
from wmtp_assets.data.small_subset import SMALL_LIMITS
from wmtp_assets.data.stats import DROP_RULES
from wmtp_assets.files.atomic import atomic_write_json
from wmtp_assets.files.layout import DatasetDirs

SCHEMA_VERSION = "v2.1.0"
PUBLICATION = (
    "A run first deletes the previous version of the split (stats/<split>_stats.json first, "
    "then <split>_metadata.json, stats/<split>_statements.json and <split>.jsonl), so the disk "
    "holds one version. All four files are written completely to temporary files; then "
    "<split>.jsonl, <split>_metadata.json, stats/<split>_statements.json and "
    "stats/<split>_stats.json are renamed into place, in that order. A split is complete exactly "
    "when its stats file exists and its jsonl_sha256 (also in the index header and the "
    "statements file) is the SHA256 of <split>.jsonl. An empty split publishes an empty JSONL, "
    "an index without problems, no statements and zero counts."
)


def build_schema(dataset: str, tokenizer_sha256: str, max_tokens: int) -> dict[str, Any]:
    """The content of ``schema.json`` for ``dataset``."""
    model = RECORD_MODELS[dataset]
    record_schema = model.model_json_schema()
    converter = CONVERTERS[dataset]
    return {
        "dataset": dataset,
        "version": SCHEMA_VERSION,
        "format": (
            "JSON Lines, UTF-8 (non-ASCII written as is), one record per line, keys in the order "
            "of `fields`, '\\n' after every line"
        ),
        "fields": list(model.model_fields),
        "required_fields": record_schema["required"],
        "record_json_schema": record_schema,
        "features": {
            "<split>.jsonl": features_of(model),
            **(
                {"<split>_eval.jsonl": features_of(EvalProblem)}
                if dataset == "codecontests"
                else {}
            ),
        },
        "field_mapping": inspect.getdoc(converter),
        "task_id": converter.key_rule,
        "input_layout": (
            convert_codecontests.INPUT_LAYOUT
            if converter is convert_codecontests
            else "always '' (the instruction carries the whole task)"
        ),
        "filter": {
            "max_tokens": max_tokens,
            "rule": (
                "keep a record when tokens(instruction) + tokens(input) + tokens(output) <= "
                "max_tokens, each text tokenized separately with the SentencePiece model below, "
                "no BOS/EOS; tokens('') = 0"
            ),
            "tokenizer_sha256": tokenizer_sha256,
            "drop_reasons": DROP_RULES,
        },
        "problem_index": {
            "file": "<split>_metadata.json",
            "line_numbers": "0-based line numbers into <split>.jsonl",
            "token_lengths": "len(sp.encode(output)): the output alone, no BOS/EOS",
            "layout": inspect.getdoc(inspect.getmodule(ProblemIndex)),
            "json_schema": ProblemIndex.model_json_schema(),
        },
        **({"evaluation": _evaluation()} if dataset == "codecontests" else {}),
        "publication": PUBLICATION,
        "small_subsets": (
            "datasets_local_small/<dataset>_small/<split>_small.jsonl: lines copied byte for byte "
            f"from <split>.jsonl, at most {SMALL_LIMITS} records, a seeded sample balanced "
            "between correct and incorrect records where both exist, in line order"
        ),
    }


def _evaluation() -> dict[str, Any]:
    return {
        "files": ["processed/<split>_eval.jsonl (valid, test)", "tests/<split>_tests.json"],
        "layout": inspect.getdoc(eval_files),
        "eval_json_schema": EvalProblem.model_json_schema(),
        "tests_value_json_schema": ProblemTests.model_json_schema(),
    }


def write_schema(dirs: DatasetDirs, dataset: str, tokenizer_sha256: str, max_tokens: int) -> Path:
    """Write ``processed/schema.json`` atomically (same content for every split of a dataset)."""
    return atomic_write_json(dirs.schema, build_schema(dataset, tokenizer_sha256, max_tokens))
