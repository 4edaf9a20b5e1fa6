"""Entry point for ``dagster`` and ``dagster-webserver``: ``wmtp_assets.definitions:defs``."""

from __future__ import annotations

import dagster as dg

from wmtp_assets.defs.conversion_assets import CONVERSION_ASSETS, CONVERSION_CHECKS
from wmtp_assets.defs.dataset_assets import DATASET_ASSETS
from wmtp_assets.defs.dataset_checks import DATASET_CHECKS
from wmtp_assets.defs.executor import run_executor
from wmtp_assets.defs.model_assets import MODEL_ASSETS, MODEL_CHECKS
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.defs.revalidation import revalidate_daily, revalidate_job
from wmtp_assets.settings import Settings

ALL_ASSETS: list[dg.AssetsDefinition] = [*MODEL_ASSETS, *CONVERSION_ASSETS, *DATASET_ASSETS]
ALL_CHECKS: list[dg.AssetChecksDefinition] = [*MODEL_CHECKS, *CONVERSION_CHECKS, *DATASET_CHECKS]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """All assets, checks, jobs and schedules, with resources from ``settings`` (env default)."""
    resolved = settings or Settings.load()
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[revalidate_job],
        schedules=[revalidate_daily],
        executor=run_executor(),
        resources={"wmtp": WmtpResource.from_settings(resolved)},
    )


defs = build_definitions()
