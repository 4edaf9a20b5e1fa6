"""Materialize or revalidate the whole graph in-process (``wmtp-assets demo`` and ``verify``).

Entry-point layer: it drives Dagster's own ``materialize`` over every asset, one run for the
unpartitioned assets and one run per dataset partition, exactly what a backfill would do.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from pydantic import BaseModel

from wmtp_assets.data.partitions import PARTITION_KEYS, Partition
from wmtp_assets.definitions import ALL_ASSETS, ALL_CHECKS
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.defs.revalidation import (
    DATASET_CHECK_KEYS,
    MODEL_CHECK_KEYS,
    REVALIDATE_JOB,
    REVALIDATION_TAGS,
)
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


def materialize_everything(settings: Settings, instance: dg.DagsterInstance) -> GraphRun:
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


def format_table(rows: Sequence[AssetRow]) -> str:
    """A fixed-width text table for the terminal."""
    header = ("asset", "partition", "path", "size", "sha256", "checks")
    lines = [
        (
            r.asset,
            r.partition,
            r.path,
            f"{r.size_bytes:,}" if r.size_bytes is not None else "",
            r.sha256[:12],
            r.checks,
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*line) for line in [header, *lines])


class CheckRow(BaseModel):
    asset: str
    partition: str
    check: str
    passed: bool
    summary: str


def _stored_model(layout: Layout, key: dg.AssetKey) -> bool:
    return layout.model(key.path[1]).metadata.is_file()


def _stored_partition(layout: Layout, key: str) -> bool:
    part = Partition.parse(key)
    return layout.dataset(part.dataset).stats_file(part.split).is_file()


class Revalidation(BaseModel):
    """Check results of a revalidation and which of its runs failed (``"models"`` or a key)."""

    rows: list[CheckRow]
    failed_runs: list[str]


def verify_everything(
    settings: Settings,
    instance: dg.DagsterInstance,
    models: Sequence[str] | None = None,
    partitions: Sequence[str] | None = None,
) -> Revalidation:
    """Rerun every check over every stored artifact and partition (the ``revalidate`` job's
    runs, in-process), or only over the named models (``micro_mtp``) and partitions; artifacts
    not stored yet are skipped, not failed."""
    layout = Layout(settings.storage_root)
    model_keys = [
        k
        for k in MODEL_CHECK_KEYS
        if _stored_model(layout, k.asset_key) and (models is None or k.asset_key.path[1] in models)
    ]
    partitions = [
        k
        for k in PARTITION_KEYS
        if _stored_partition(layout, k) and (partitions is None or k in partitions)
    ]
    plans: list[tuple[str, list[dg.AssetCheckKey], dict[str, str]]] = []
    if model_keys:
        plans.append(("", model_keys, dict(REVALIDATION_TAGS)))
    plans += [
        (key, DATASET_CHECK_KEYS, {**REVALIDATION_TAGS, "dagster/partition": key})
        for key in partitions
    ]
    rows: list[CheckRow] = []
    failed_runs: list[str] = []
    for partition, keys, tags in plans:
        job = dg.define_asset_job(REVALIDATE_JOB, selection=dg.AssetSelection.checks(*keys))
        defs = dg.Definitions(
            assets=ALL_ASSETS,
            asset_checks=ALL_CHECKS,
            jobs=[job],
            resources={"wmtp": WmtpResource.from_settings(settings)},
        )
        result = defs.resolve_job_def(REVALIDATE_JOB).execute_in_process(
            instance=instance, tags=tags, raise_on_error=False
        )
        if not result.success:
            failed_runs.append(partition or "models")
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
            for k in keys
            if (k.asset_key, k.name) not in evaluated
        ]
    return Revalidation(rows=rows, failed_runs=failed_runs)


def format_check_table(rows: Sequence[CheckRow]) -> str:
    """Fixed-width table of check results."""
    header = ("asset", "partition", "check", "result", "summary")
    lines = [
        (r.asset, r.partition, r.check, "ok" if r.passed else "FAIL", r.summary[:120]) for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*line) for line in [header, *lines])
