"""Entry point for ``dagster`` and ``dagster-webserver``: ``wmtp_assets.definitions:defs``."""

from __future__ import annotations

import dagster as dg

from wmtp_assets.defs.checks import ALL_CHECKS
from wmtp_assets.defs.datasets import DATASET_ASSETS
from wmtp_assets.defs.dead_runs import free_slots_of_dead_runs_sensor
from wmtp_assets.defs.executor import run_executor
from wmtp_assets.defs.models import MODEL_ASSETS
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.defs.revalidation import revalidate_daily, revalidate_job
from wmtp_assets.settings import Settings, SettingsError

ALL_ASSETS: list[dg.AssetsDefinition] = [*MODEL_ASSETS, *DATASET_ASSETS]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """All assets, checks, jobs and schedules, with resources from ``settings`` (default: the
    environment, then the storage root's settings file)."""
    resolved = settings or Settings.load()
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[revalidate_job],
        schedules=[revalidate_daily],
        sensors=[free_slots_of_dead_runs_sensor],
        executor=run_executor(),
        resources={"wmtp": WmtpResource.from_settings(resolved)},
    )


try:
    defs = build_definitions()
except SettingsError as exc:
    # A bad setting is a user error: one line under every entry point that loads this module
    # (``dagster``, ``dagster-webserver``), never the import machinery's traceback.
    raise SystemExit(f"wmtp-assets: bad setting: {exc}") from None
