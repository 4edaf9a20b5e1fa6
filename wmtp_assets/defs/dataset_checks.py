"""Partitioned asset checks of the dataset artifacts; thin wrappers over
``wmtp_assets.validate.dataset_checks``.

They are partitioned like the assets (Dagster marks partitioned checks as a preview feature and
warns): a materialization of one partition runs that partition's checks, and the ``revalidate``
job runs them per partition (``wmtp_assets.defs.revalidation``). Blocking: schema, task ids and
the problem index (training would read wrong rows) and the evaluation files (evaluation would
score against wrong tests).
"""

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg

from wmtp_assets.data.partitions import Partition
from wmtp_assets.defs.check_results import report_outcome
from wmtp_assets.defs.dataset_assets import (
    EVAL_PROBLEMS,
    EVAL_TESTS,
    PARTITIONS,
    PROBLEM_INDEX,
    PROCESSED,
    SMALL,
    STATS,
)
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.validate import dataset_checks as dc
from wmtp_assets.validate.outcome import CheckOutcome, guarded

Body = Callable[[WmtpResource, Partition], CheckOutcome]


def _tokenizer(w: WmtpResource) -> Path:
    return w.layout.shared_tokenizer


CHECKS: list[tuple[dg.AssetKey, str, bool, Body]] = [
    (
        PROCESSED,
        "records_match_schema",
        True,
        lambda w, p: dc.records_match_schema(
            w.layout.dataset(p.dataset), p, w.settings.tokenizer_sha256, w.settings.max_tokens
        ),
    ),
    (
        PROCESSED,
        "task_ids_unique_and_labelled",
        True,
        lambda w, p: dc.task_ids_unique_and_labelled(w.layout.dataset(p.dataset), p),
    ),
    (
        PROCESSED,
        "token_limit_respected",
        False,
        lambda w, p: dc.token_limit_respected(
            w.layout.dataset(p.dataset), p, _tokenizer(w), w.settings.max_tokens
        ),
    ),
    (
        PROCESSED,
        "splits_disjoint",
        False,
        lambda w, p: dc.splits_disjoint(w.layout, p),
    ),
    (
        STATS,
        "counts_match_stats",
        False,
        lambda w, p: dc.counts_match_stats(w.layout.dataset(p.dataset), p),
    ),
    (
        PROBLEM_INDEX,
        "index_matches_records",
        True,
        lambda w, p: dc.index_matches_records(w.layout.dataset(p.dataset), p),
    ),
    (
        SMALL,
        "small_is_subset",
        False,
        lambda w, p: dc.small_is_subset(w.layout.dataset(p.dataset), p),
    ),
    (
        PROCESSED,
        "trainer_path_of_dataset",
        False,
        lambda w, p: dc.trainer_path_of_dataset(w.layout, p),
    ),
    (
        EVAL_PROBLEMS,
        "eval_problems_cover_split",
        True,
        lambda w, p: dc.eval_problems_cover_split(w.layout.dataset(p.dataset), p),
    ),
    (
        EVAL_TESTS,
        "eval_tests_cover_split",
        True,
        lambda w, p: dc.eval_tests_cover_split(w.layout.dataset(p.dataset), p),
    ),
]


def _make_check(
    key: dg.AssetKey, name: str, blocking: bool, body: Body
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=key,
        name=name,
        blocking=blocking,
        partitions_def=PARTITIONS,
        description=(getattr(dc, name).__doc__ or "").strip(),
    )
    def _check(
        context: dg.AssetCheckExecutionContext, wmtp: WmtpResource
    ) -> Iterator[dg.AssetCheckResult]:
        part = Partition.parse(context.partition_key)
        yield from report_outcome(context, name, guarded(lambda: body(wmtp, part)))

    return _check


with warnings.catch_warnings():
    # Partitioned checks are a Dagster preview feature; the choice is documented above.
    warnings.simplefilter("ignore", dg.PreviewWarning)
    DATASET_CHECKS = [_make_check(*spec) for spec in CHECKS]
