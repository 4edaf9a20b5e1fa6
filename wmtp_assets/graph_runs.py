"""Materialize or revalidate the whole graph in-process (``wmtp-assets demo`` and ``verify``).

Entry-point layer: it drives Dagster's own ``materialize`` over every asset, one run for the
unpartitioned assets and one run per dataset partition, exactly what a backfill would do.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from pydantic import BaseModel

from wmtp_assets.definitions import ALL_ASSETS
from wmtp_assets.defs.checks import ALL_CHECKS
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.defs.revalidation import MODELS_RUN, REVALIDATE_JOB, revalidation_plan
from wmtp_assets.files.layout import Layout
from wmtp_assets.settings import Settings


class AssetRow(BaseModel):
    asset: str
    partition: str
    path: str
    size_bytes: int | None
    sha256: str
    checks: str


class GraphRun(BaseModel):
    rows: list[AssetRow]
    failed_runs: list[str]
    failed_checks: list[str]

    @property
    def ok(self) -> bool:
        return not self.failed_runs and not self.failed_checks


def _first(metadata: dict[str, dg.MetadataValue], suffixes: Sequence[str]) -> object:
    for suffix in suffixes:
        for key, value in metadata.items():
            if key.endswith(suffix):
                return value.value
    return None


def _partitioned(asset: dg.AssetsDefinition) -> bool:
    return asset.partitions_def is not None


def console_log_level(level: str) -> dict[str, object]:
    """Run config that sets the console logger's level (Dagster's default prints DEBUG)."""
    return {"loggers": {"console": {"config": {"log_level": level}}}}


def materialize_everything(
    settings: Settings, instance: dg.DagsterInstance, log_level: str = "WARNING"
) -> GraphRun:
    """Materialize every asset and partition, running every check; never raise on failure."""
    resources = {"wmtp": WmtpResource.from_settings(settings)}
    everything = [*ALL_ASSETS, *ALL_CHECKS]
    plain = [a for a in ALL_ASSETS if not _partitioned(a)]
    partitioned = [a for a in ALL_ASSETS if _partitioned(a)]
    runs: list[tuple[str, dg.ExecuteInProcessResult]] = []
    selection = dg.AssetSelection.assets(*plain)
    runs.append(
        (
            "",
            dg.materialize(
                everything,
                selection=selection,
                resources=resources,
                instance=instance,
                run_config=console_log_level(log_level),
                raise_on_error=False,
            ),
        )
    )
    if partitioned:
        partitions_def = partitioned[0].partitions_def
        assert partitions_def is not None
        for key in partitions_def.get_partition_keys():
            runs.append(
                (
                    key,
                    dg.materialize(
                        everything,
                        selection=dg.AssetSelection.assets(*partitioned),
                        partition_key=key,
                        resources=resources,
                        instance=instance,
                        run_config=console_log_level(log_level),
                        raise_on_error=False,
                    ),
                )
            )
    return _summarise(runs)


def _summarise(runs: list[tuple[str, dg.ExecuteInProcessResult]]) -> GraphRun:
    rows: list[AssetRow] = []
    failed_runs: list[str] = []
    failed_checks: list[str] = []
    for partition, result in runs:
        if not result.success:
            failed_runs.append(partition or "models")
        passed: dict[str, int] = {}
        failed: dict[str, list[str]] = {}
        for evaluation in result.get_asset_check_evaluations():
            asset = evaluation.asset_key.to_user_string()
            passed.setdefault(asset, 0)
            if evaluation.passed:
                passed[asset] += 1
            else:
                failed.setdefault(asset, []).append(evaluation.check_name)
                failed_checks.append(
                    f"{asset}[{partition}] {evaluation.check_name}: {evaluation.description}"
                )
        for event in result.get_asset_materialization_events():
            materialization = event.materialization
            metadata = dict(materialization.metadata)
            asset = materialization.asset_key.to_user_string()
            size = _first(metadata, ("size_bytes", "total_bytes"))
            rows.append(
                AssetRow(
                    asset=asset,
                    partition=materialization.partition or "",
                    path=str(_first(metadata, ("_path", "_dir")) or ""),
                    size_bytes=int(size) if isinstance(size, int) else None,
                    sha256=str(_first(metadata, ("sha256",)) or ""),
                    checks=_check_summary(passed.get(asset), failed.get(asset, [])),
                )
            )
    return GraphRun(rows=rows, failed_runs=failed_runs, failed_checks=failed_checks)


def _check_summary(passed: int | None, failed: list[str]) -> str:
    if passed is None and not failed:
        return "-"
    text = f"{passed or 0} ok"
    return f"{text}, FAILED: {', '.join(failed)}" if failed else text


class CheckRow(BaseModel):
    asset: str
    partition: str
    check: str
    passed: bool
    summary: str


class Revalidation(BaseModel):
    """Check results of a revalidation and which of its runs failed (``"models"`` or a key)."""

    rows: list[CheckRow]
    failed_runs: list[str]


def verify_everything(
    settings: Settings,
    instance: dg.DagsterInstance,
    models: Sequence[str] | None = None,
    partitions: Sequence[str] | None = None,
    log_level: str = "WARNING",
) -> Revalidation:
    """Run the ``revalidate`` plan in-process: every check over everything stored or
    materialized (or only the named models, e.g. ``micro_mtp``, and partitions)."""
    plan = revalidation_plan(Layout(settings.storage_root), instance, models, partitions)
    rows: list[CheckRow] = []
    failed_runs: list[str] = []
    for run in plan:
        partition = "" if run.name == MODELS_RUN else run.name
        job = dg.define_asset_job(
            REVALIDATE_JOB, selection=dg.AssetSelection.checks(*run.check_keys)
        )
        defs = dg.Definitions(
            assets=ALL_ASSETS,
            asset_checks=ALL_CHECKS,
            jobs=[job],
            resources={"wmtp": WmtpResource.from_settings(settings)},
        )
        result = defs.resolve_job_def(REVALIDATE_JOB).execute_in_process(
            instance=instance,
            tags=run.tags,
            run_config=console_log_level(log_level),
            raise_on_error=False,
        )
        if not result.success:
            failed_runs.append(run.name)
        evaluated = {(e.asset_key, e.check_name) for e in result.get_asset_check_evaluations()}
        rows += [
            CheckRow(
                asset=e.asset_key.to_user_string(),
                partition=partition,
                check=e.check_name,
                passed=e.passed,
                summary=e.description or "",
            )
            for e in result.get_asset_check_evaluations()
        ]
        rows += [
            CheckRow(
                asset=k.asset_key.to_user_string(),
                partition=partition,
                check=k.name,
                passed=False,
                summary="did not run (its step failed before reporting)",
            )
            for k in run.check_keys
            if (k.asset_key, k.name) not in evaluated
        ]
    return Revalidation(rows=rows, failed_runs=failed_runs)
