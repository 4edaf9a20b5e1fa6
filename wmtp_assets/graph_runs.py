"""Materialize or revalidate the whole graph in-process (``wmtp-assets demo`` and ``verify``).

Entry-point layer: it drives Dagster's own ``materialize`` over every asset, one run for the
unpartitioned assets and one run per dataset partition, exactly what a backfill would do.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg
from pydantic import BaseModel

from wmtp_assets.definitions import ALL_ASSETS
from wmtp_assets.defs.checks import ALL_CHECKS
from wmtp_assets.defs.metadata import SEALED_FILES
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.defs.revalidation import (
    MODELS_RUN,
    REVALIDATE_JOB,
    RevalidationRun,
    revalidation_plan,
)
from wmtp_assets.defs.seal_checks import SEALED_CHECK
from wmtp_assets.files.hashing import hashes_ahead
from wmtp_assets.files.layout import Layout
from wmtp_assets.models.cpu_threads import cores
from wmtp_assets.progress import Progress
from wmtp_assets.settings import Settings
from wmtp_assets.validate.signatures import recorded_scopes

RUN_JOB = "__wmtp_cli_run"
"""Name of the one job each in-process run of ``demo`` builds (like ``dg.materialize``'s)."""
HASHED_AHEAD_FROM = 1 << 30
"""Model files from this size are hashed by a thread ahead of verify's checks."""


class AssetRow(BaseModel):
    asset: str
    partition: str
    path: str
    size_bytes: int | None
    sha256: str
    checks: str
    files: int = 0
    """Files the materialization published (its seal)."""


class GraphRun(BaseModel):
    rows: list[AssetRow]
    failed_runs: list[str]
    failed_checks: list[str]
    checks_passed: int = 0

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


class _StepLines(logging.Handler):
    """Turns a run's Dagster events into progress lines: what is running, each asset
    materialized, each step failed with its first error line."""

    def __init__(self, progress: Progress, run_name: str) -> None:
        super().__init__()
        self._progress = progress
        self._run = run_name

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        event = meta.get("dagster_event") if isinstance(meta, Mapping) else None
        if not isinstance(event, dg.DagsterEvent):
            return
        where = f"[{self._run}]"
        if event.event_type_value == "STEP_START":
            self._progress.working_on(f"{event.step_key} {where}")
        elif event.event_type_value == "ASSET_MATERIALIZATION" and event.asset_key is not None:
            self._progress.line(f"materialized {event.asset_key.to_user_string()} {where}")
        elif event.is_step_failure:
            error = event.step_failure_data.error
            reason = error.message.strip().splitlines()[0] if error else "no error recorded"
            self._progress.line(f"FAILED step {event.step_key} {where}: {reason}")


def _logging(
    progress: Progress | None, run_name: str, verbose: bool
) -> tuple[dict[str, dg.LoggerDefinition], dict[str, object]]:
    """Loggers and their run config: Dagster's console log (DEBUG) only when ``verbose``, and
    the progress lines when there is a ``progress``."""
    loggers: dict[str, dg.LoggerDefinition] = {}
    config: dict[str, object] = {}
    if verbose:
        loggers["console"] = dg.colored_console_logger
        config["console"] = {"config": {"log_level": "DEBUG"}}
    if progress is not None:
        handler = _StepLines(progress, run_name)

        def build(_: dg.InitLoggerContext) -> logging.Logger:
            logger = logging.Logger("wmtp_assets.progress", level=logging.DEBUG)
            logger.addHandler(handler)
            return logger

        loggers["progress"] = dg.LoggerDefinition(build)
        config["progress"] = {}
    if not loggers:  # without any, Dagster falls back to its console logger at DEBUG
        loggers["console"] = dg.colored_console_logger
        config["console"] = {"config": {"log_level": "CRITICAL"}}
    return loggers, {"loggers": config}


def _execute(
    job: dg.UnresolvedAssetJobDefinition,
    settings: Settings,
    instance: dg.DagsterInstance,
    run_name: str,
    progress: Progress | None,
    verbose: bool,
    partition_key: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """One in-process run of ``job`` over every asset and check; never raises on failure."""
    loggers, run_config = _logging(progress, run_name, verbose)
    defs = dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[job],
        loggers=loggers,
        resources={"wmtp": WmtpResource.from_settings(settings)},
    )
    return defs.resolve_job_def(job.name).execute_in_process(
        instance=instance,
        partition_key=partition_key,
        tags=tags,
        run_config=run_config,
        raise_on_error=False,
    )


def materialize_everything(
    settings: Settings,
    instance: dg.DagsterInstance,
    progress: Progress | None = None,
    verbose: bool = False,
) -> GraphRun:
    """Materialize every asset and partition, running every check; never raise on failure.
    One run for the unpartitioned assets, one per dataset partition, as a backfill would."""
    plain = [a for a in ALL_ASSETS if not _partitioned(a)]
    partitioned = [a for a in ALL_ASSETS if _partitioned(a)]
    runs: list[tuple[str, dg.ExecuteInProcessResult]] = []
    job = dg.define_asset_job(RUN_JOB, selection=dg.AssetSelection.assets(*plain))
    runs.append(("", _execute(job, settings, instance, "models", progress, verbose)))
    if partitioned:
        partitions_def = partitioned[0].partitions_def
        assert partitions_def is not None
        job = dg.define_asset_job(RUN_JOB, selection=dg.AssetSelection.assets(*partitioned))
        for key in partitions_def.get_partition_keys():
            runs.append((key, _execute(job, settings, instance, key, progress, verbose, key)))
    return _summarise(runs)


def _summarise(runs: list[tuple[str, dg.ExecuteInProcessResult]]) -> GraphRun:
    rows: list[AssetRow] = []
    failed_runs: list[str] = []
    failed_checks: list[str] = []
    checks_passed = 0
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
                checks_passed += 1
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
            sealed = metadata.get(SEALED_FILES)
            rows.append(
                AssetRow(
                    asset=asset,
                    partition=materialization.partition or "",
                    path=str(_first(metadata, ("_path", "_dir")) or ""),
                    size_bytes=int(size) if isinstance(size, int) else None,
                    sha256=str(_first(metadata, ("sha256",)) or ""),
                    checks=_check_summary(passed.get(asset), failed.get(asset, [])),
                    files=len(sealed.value or ())
                    if isinstance(sealed, dg.JsonMetadataValue)
                    else 0,
                )
            )
    return GraphRun(
        rows=rows, failed_runs=failed_runs, failed_checks=failed_checks, checks_passed=checks_passed
    )


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
    files: int = 0
    """Files this check re-hashed against the materialization's seal (the seal check only)."""


def _sealed_files(evaluation: dg.AssetCheckEvaluation) -> int:
    if evaluation.check_name != SEALED_CHECK:
        return 0
    value = evaluation.metadata.get("files")
    return value.value if isinstance(value, dg.IntMetadataValue) and value.value else 0


class Revalidation(BaseModel):
    """Check results of a revalidation and which of its runs failed (``"models"`` or a key)."""

    rows: list[CheckRow]
    failed_runs: list[str]


def verify_everything(
    settings: Settings,
    instance: dg.DagsterInstance,
    models: Sequence[str] | None = None,
    partitions: Sequence[str] | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
) -> Revalidation:
    """Run the ``revalidate`` plan in-process: every check over everything stored or
    materialized (or only the named models, e.g. ``micro_mtp``, and partitions)."""
    plan = revalidation_plan(
        Layout(settings.storage_root), instance, models, partitions, recorded_scopes(settings)
    )
    rows: list[CheckRow] = []
    failed_runs: list[str] = []
    for run in plan:
        partition = "" if run.name == MODELS_RUN else run.name
        job = dg.define_asset_job(
            REVALIDATE_JOB, selection=dg.AssetSelection.checks(*run.check_keys)
        )
        if progress is not None:
            progress.working_on(f"{len(run.check_keys)} checks [{run.name}]")
        # the checks run one after another here; a thread hashes the large model files
        # beside them (at most two streams beside theirs: the disk bounds them, not the cores)
        ahead = _large_model_files(Layout(settings.storage_root), run)
        with hashes_ahead(ahead, workers=min(2, cores() - 1)):
            result = _execute(job, settings, instance, run.name, progress, verbose, tags=run.tags)
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
                files=_sealed_files(e),
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
        if progress is not None:
            done = [r for r in rows if r.partition == partition]
            failed = sum(not r.passed for r in done)
            progress.line(f"checked [{run.name}]: {len(done)} checks, {failed} failed")
    return Revalidation(rows=rows, failed_runs=failed_runs)


def _large_model_files(layout: Layout, run: RevalidationRun) -> list[Path]:
    """The large files a models run hashes: the converted weights first, then the raw files
    (symlinks not followed). The run checks a model's raw files before its weights, so a
    thread that starts with the weights works beside the run's own read of the raw files."""
    if run.name != MODELS_RUN:
        return []
    models = [
        layout.model(name) for name in dict.fromkeys(k.asset_key.path[1] for k in run.check_keys)
    ]
    raw: list[Path] = []
    for dirs in models:
        for folder, _, names in os.walk(dirs.raw):
            raw += [Path(folder, n) for n in sorted(names)]
    return [
        p
        for p in [d.weights for d in models] + raw
        if not p.is_symlink() and p.is_file() and p.stat().st_size >= HASHED_AHEAD_FROM
    ]
