"""The ``revalidate`` job, its ``revalidate_daily`` schedule, and the one plan both it and
``wmtp-assets verify`` run.

Mechanism: per-partition runs of one checks-only job. The dataset checks are partitioned (a
Dagster preview feature), and a checks-only job has no partitions of its own, so each dataset
partition gets its own run tagged ``dagster/partition=<key>``; one more run covers the
(unpartitioned) model checks. Every run carries ``wmtp/revalidation=true``, which makes a failed
check fail its run (the check ops in ``checks``): the run list shows red per partition and
the checks tab shows which check and why. Nothing is re-materialized.

What is covered: every model and partition with any file in storage, and every one the
instance says was materialized. A stored artifact with a file missing is checked (and fails),
never skipped. With ``WMTP_VERIFY_KEY`` set, ``signature_valid`` is part of the plan, and so is
every model and partition the signed-state record holds for this root (a rollback that removed
one entirely is still reported); without a key it is left out of the plan, and what runs is
self-consistency only (``defs.signature_checks``).
"""

from collections.abc import Sequence
from typing import NamedTuple

import dagster as dg

from wmtp_assets.data.partitions import PARTITION_KEYS
from wmtp_assets.defs.checks import DATASET_CHECKS, MODEL_CHECKS
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.defs.signature_checks import REVALIDATION_TAG
from wmtp_assets.files.layout import Layout
from wmtp_assets.validate.signatures import SIGNATURE_CHECK, recorded_scopes
from wmtp_assets.validate.signed_scopes import scope_owner
from wmtp_assets.validate.stored import stored_models, stored_partitions

REVALIDATE_JOB = "revalidate"
REVALIDATION_TAGS = {REVALIDATION_TAG: "true"}
MODELS_RUN = "models"

MODEL_CHECK_KEYS = [key for check in MODEL_CHECKS for key in check.check_keys]
DATASET_CHECK_KEYS = [key for check in DATASET_CHECKS for key in check.check_keys]


class RevalidationRun(NamedTuple):
    """One run of the ``revalidate`` job: ``MODELS_RUN`` or a partition key, and its checks."""

    name: str
    check_keys: list[dg.AssetCheckKey]
    tags: dict[str, str]


def _model_name(key: dg.AssetCheckKey) -> str:
    return key.asset_key.path[1]


def _materialized_models(instance: dg.DagsterInstance) -> set[str]:
    assets = {k.asset_key for k in MODEL_CHECK_KEYS}
    return {
        key.path[1] for key in assets if instance.get_latest_materialization_event(key) is not None
    }


def _materialized_partitions(instance: dg.DagsterInstance) -> set[str]:
    assets = {k.asset_key for k in DATASET_CHECK_KEYS}
    return {p for key in assets for p in instance.get_materialized_partitions(key)}


def revalidation_plan(
    layout: Layout,
    instance: dg.DagsterInstance,
    models: Sequence[str] | None = None,
    partitions: Sequence[str] | None = None,
    signed: Sequence[str] | None = None,
) -> list[RevalidationRun]:
    """The runs that check everything stored or materialized, or only what is named: models
    (e.g. ``micro_mtp``) and partitions. Naming only partitions checks no model, and naming
    only models checks no partition (``verify --partition X`` checks X and nothing else).
    ``signed``: the scopes the signed-state record holds (``recorded_scopes``), None without
    ``WMTP_VERIFY_KEY`` (no ``signature_valid`` in the plan)."""
    if models is None and partitions is not None:
        models = []
    if partitions is None and models is not None:
        partitions = []
    known_models = set(stored_models(layout)) | _materialized_models(instance)
    known_partitions = set(stored_partitions(layout)) | _materialized_partitions(instance)
    for model, partition in (scope_owner(layout, name) for name in signed or ()):
        known_models |= {model} if model else set()
        known_partitions |= {partition} if partition else set()
    model_keys = [
        k
        for k in MODEL_CHECK_KEYS
        if _model_name(k) in known_models and (models is None or _model_name(k) in models)
    ]
    dataset_keys = DATASET_CHECK_KEYS
    if signed is None:
        model_keys = [k for k in model_keys if k.name != SIGNATURE_CHECK]
        dataset_keys = [k for k in dataset_keys if k.name != SIGNATURE_CHECK]
    plan: list[RevalidationRun] = []
    if model_keys:
        plan.append(RevalidationRun(MODELS_RUN, model_keys, dict(REVALIDATION_TAGS)))
    plan += [
        RevalidationRun(key, dataset_keys, {**REVALIDATION_TAGS, "dagster/partition": key})
        for key in PARTITION_KEYS
        if key in known_partitions and (partitions is None or key in partitions)
    ]
    return plan


revalidate_job = dg.define_asset_job(
    REVALIDATE_JOB,
    selection=dg.AssetSelection.all_asset_checks(),
    tags=REVALIDATION_TAGS,
    description="Rerun every asset check over what is stored, without materializing anything. "
    "Launch with a dagster/partition tag for one dataset partition.",
)


@dg.schedule(
    job=revalidate_job,
    cron_schedule="0 4 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily revalidation of every stored artifact (models and all dataset partitions).",
)
def revalidate_daily(
    context: dg.ScheduleEvaluationContext, wmtp: WmtpResource
) -> list[dg.RunRequest]:
    stamp = (
        context.scheduled_execution_time.strftime("%Y-%m-%d")
        if context.scheduled_execution_time
        else "manual"
    )
    return [
        dg.RunRequest(run_key=f"{stamp}:{run.name}", asset_check_keys=run.check_keys, tags=run.tags)
        for run in revalidation_plan(
            wmtp.layout, context.instance, signed=recorded_scopes(wmtp.settings)
        )
    ]
