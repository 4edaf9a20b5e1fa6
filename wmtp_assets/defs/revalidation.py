"""The ``revalidate`` job and its ``revalidate_daily`` schedule.

Mechanism: per-partition runs of one checks-only job. The dataset checks are partitioned (a
Dagster preview feature), and a checks-only job has no partitions of its own, so each dataset
partition gets its own run tagged ``dagster/partition=<key>``; one more run covers the
(unpartitioned) model checks. Every run carries ``wmtp/revalidation=true``, which makes a failed
check fail its run (``check_results.report_outcome``): the run list shows red per partition and
the checks tab shows which check and why. Nothing is re-materialized.
"""

import dagster as dg

from wmtp_assets.data.partitions import PARTITION_KEYS
from wmtp_assets.defs.check_results import REVALIDATION_TAG
from wmtp_assets.defs.conversion_assets import CONVERSION_CHECKS
from wmtp_assets.defs.dataset_checks import DATASET_CHECKS
from wmtp_assets.defs.model_assets import MODEL_CHECKS

REVALIDATE_JOB = "revalidate"
REVALIDATION_TAGS = {REVALIDATION_TAG: "true"}

MODEL_CHECK_KEYS = [
    key for check in [*MODEL_CHECKS, *CONVERSION_CHECKS] for key in check.check_keys
]
DATASET_CHECK_KEYS = [key for check in DATASET_CHECKS for key in check.check_keys]

revalidate_job = dg.define_asset_job(
    REVALIDATE_JOB,
    selection=dg.AssetSelection.all_asset_checks(),
    tags=REVALIDATION_TAGS,
    description="Rerun every asset check over what is stored, without materializing anything. "
    "Launch with a dagster/partition tag for one dataset partition.",
)


def revalidation_requests() -> list[dg.RunRequest]:
    """One run for the model checks, one per dataset partition."""
    requests = [dg.RunRequest(asset_check_keys=MODEL_CHECK_KEYS, tags=REVALIDATION_TAGS)]
    requests += [
        dg.RunRequest(
            asset_check_keys=DATASET_CHECK_KEYS,
            tags={**REVALIDATION_TAGS, "dagster/partition": key},
        )
        for key in PARTITION_KEYS
    ]
    return requests


@dg.schedule(
    job=revalidate_job,
    cron_schedule="0 4 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily revalidation of every stored artifact (models and all dataset partitions).",
)
def revalidate_daily(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    stamp = (
        context.scheduled_execution_time.strftime("%Y-%m-%d")
        if context.scheduled_execution_time
        else "manual"
    )
    return [
        dg.RunRequest(
            run_key=f"{stamp}:{request.tags.get('dagster/partition', 'models')}",
            asset_check_keys=request.asset_check_keys,
            tags=request.tags,
        )
        for request in revalidation_requests()
    ]
