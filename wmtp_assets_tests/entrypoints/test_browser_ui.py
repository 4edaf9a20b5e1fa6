"""The newcomer's path through the web UI, driven in Chromium like a person would.

After ``wmtp-assets demo`` and ``wmtp-assets ui`` (the ``webserver`` fixture): the catalog shows
every asset materialized, an asset's page its description, kinds, owner and freshness policy,
the lineage the contract's two groups, ``models/micro_mtp``'s checks all passed, a dataset
partition's stats have their numbers and plots, and the Materialize button builds ``micro_mtp``
again. This proves
what the GraphQL test cannot: the UI's own JavaScript renders what the demo recorded. Uses
Debian's Chromium (the README's set-up installs it); never a downloaded one.

Screenshots go to ``$UI_SCREENSHOTS_DIR`` when set, else a session temporary folder; the test
prints where.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Page, Response, expect, sync_playwright

from wmtp_assets.definitions import ALL_ASSETS, ALL_CHECKS
from wmtp_assets.defs.datasets import RAW, STATS
from wmtp_assets.defs.models import META_SAFETENSORS, MICRO_MTP
from wmtp_assets.validate.signatures import SIGNATURE_CHECK
from wmtp_assets_tests.entrypoints.conftest import Webserver

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 60_000
# Tall enough that the catalog's virtualized table renders all 16 rows at once.
VIEWPORT = {"width": 1400, "height": 1700}
# A catalog row; Dagster's table is div-based (no ARIA rows), one element per row.
CATALOG_ROW = '[class^="VirtualizedTable_row"]'
PARTITION = "mbpp.test"
# How Dagster's UI names a kind (its own display names, not ours).
KIND_LABELS = {"pytorch": "PyTorch", "huggingface": "Hugging Face", "parquet": "Parquet"}


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("UI_SCREENSHOTS_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("ui_screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nUI screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def page(webserver: Webserver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    # A fresh instance opens the UI with a "Join the Dagster community" dialog over every page
    # (on 127.0.0.1 only); marking it seen, as its Skip button does, keeps the page usable.
    webserver.graphql("mutation { setNuxSeen }")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=VIEWPORT,
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def _shot(page: Page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000, f"{path}: suspiciously small screenshot"
    print(f"screenshot: {path}")
    return path


def test_catalog_shows_every_asset_materialized(
    page: Page, webserver: Webserver, screenshots: Path
) -> None:
    page.goto(f"{webserver.url}/assets")
    specs = [spec for asset in ALL_ASSETS for spec in asset.specs]
    for spec in specs:
        link = page.locator(f'a[href="/assets/{spec.key.to_user_string()}"]')
        row = page.locator(CATALOG_ROW).filter(has=link)
        expect(row).to_have_count(1)
        if spec.partitions_def is None:
            expect(row.get_by_text("Materialized", exact=True)).to_be_visible()
        else:
            # "All" with zero missing, failed and in-progress partitions
            n = len(spec.partitions_def.get_partition_keys())
            expect(row.get_by_text(f"{n} partitions")).to_be_visible()
            expect(row.get_by_text("All", exact=True)).to_be_visible()
        expect(row).not_to_contain_text("Never materialized")
    _shot(page, screenshots, "catalog")


def _spec(key: dg.AssetKey) -> dg.AssetSpec:
    return next(spec for asset in ALL_ASSETS for spec in asset.specs if spec.key == key)


@pytest.mark.parametrize("key", [META_SAFETENSORS, RAW], ids=lambda k: k.to_user_string())
def test_an_asset_page_shows_description_kinds_owner_and_freshness(
    key: dg.AssetKey, page: Page, webserver: Webserver, screenshots: Path
) -> None:
    spec = _spec(key)
    page.goto(f"{webserver.url}/assets/{key.to_user_string()}")
    # the whole description (markdown renders its `path` as code)
    assert spec.description
    expect(page.get_by_text(spec.description.replace("`", "")).first).to_be_visible()
    for kind in spec.kinds:
        expect(page.get_by_text(KIND_LABELS.get(kind, kind), exact=True).first).to_be_visible()
    for owner in spec.owners:
        expect(page.get_by_text(owner.removeprefix("team:"), exact=True).first).to_be_visible()
    expect(page.get_by_text(spec.group_name or "-", exact=True).first).to_be_visible()
    expect(page.get_by_text("Freshness policy", exact=True).first).to_be_visible()
    expect(
        page.get_by_text("Fails if more than a month since last materialization")
    ).to_be_visible()
    expect(page.get_by_text("Warns if more than 8 days since last materialization")).to_be_visible()
    # the demo materialized everything minutes ago: the freshness daemon says it passes
    expect(page.get_by_text("Passing", exact=True).first).to_be_visible(timeout=120_000)
    _shot(page, screenshots, f"asset_page_{key.path[-1]}_{key.path[0]}")


def test_the_lineage_draws_the_contracts_groups(
    page: Page, webserver: Webserver, screenshots: Path
) -> None:
    groups = sorted(
        {spec.group_name for asset in ALL_ASSETS for spec in asset.specs if spec.group_name}
    )
    assert groups == ["datasets", "models"]
    page.goto(f"{webserver.url}/asset-groups")
    for group in groups:
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    _shot(page, screenshots, "lineage_groups")


def test_micro_mtp_checks_all_passed(page: Page, webserver: Webserver, screenshots: Path) -> None:
    names = sorted(
        key.name for check in ALL_CHECKS for key in check.check_keys if key.asset_key == MICRO_MTP
    )
    page.goto(f"{webserver.url}/assets/{MICRO_MTP.to_user_string()}?view=checks")
    expect(page.get_by_text(f"Checks ({len(names)})")).to_be_visible()
    for name in names:
        # long names are shown middle-truncated; the full name is in the row's measuring element
        expect(page.get_by_text(name, exact=True).first).to_be_attached()
    # all but signature_valid, which only the revalidation runs, never a materialization
    assert SIGNATURE_CHECK in names
    expect(page.get_by_text("Succeeded", exact=True)).to_have_count(len(names) - 1)
    _shot(page, screenshots, "micro_mtp_checks")


def test_a_partitions_stats_with_their_plots(
    page: Page, webserver: Webserver, screenshots: Path
) -> None:
    asset_url = f"{webserver.url}/assets/{STATS.to_user_string()}"
    page.goto(f"{asset_url}?view=partitions&partition={PARTITION}")
    expect(page.get_by_text("Materialized (7)")).to_be_visible()
    for key in ("kept", "dropped_too_long", "tokens_p50", "tokens_p99", "settings"):
        expect(page.get_by_text(key, exact=True).first).to_be_visible()
    _shot(page, screenshots, f"stats_{PARTITION}")

    page.goto(asset_url)
    page.get_by_role("button", name="Plots").click()
    # one chart per numeric entry, each titled with its key, plotted across the partitions
    plotted = ("dropped", "dropped_too_long", "kept", "records_read", "tokens_p50", "tokens_max")
    for key in plotted:
        expect(page.get_by_text(key, exact=True).first).to_be_visible()
    expect(page.locator("canvas").first).to_be_visible()
    assert page.locator("canvas").count() >= len(plotted)
    _shot(page, screenshots, "stats_plots")


def _is_launch(response: Response) -> bool:
    """The UI's launch request (the webserver names each GraphQL operation in the URL)."""
    return response.url.endswith("/graphql?op=LaunchPipelineExecution")


def test_materialize_button_builds_micro_mtp(
    page: Page, webserver: Webserver, screenshots: Path
) -> None:
    page.goto(f"{webserver.url}/assets/{MICRO_MTP.to_user_string()}")
    materialize = page.get_by_role("button", name=re.compile(r"Materialize$"))
    with page.expect_response(_is_launch, timeout=UI_TIMEOUT_MS) as launch:
        materialize.click()
    result = launch.value.json()["data"]["launchPipelineExecution"]
    assert result["__typename"] == "LaunchRunSuccess", result
    run_id = result["run"]["id"]

    page.goto(f"{webserver.url}/runs/{run_id}")
    run = webserver.wait_for_run(run_id, timeout_s=240)
    assert run.status == "SUCCESS", run.errors()
    expect(page.get_by_role("img", name="run_success").first).to_be_visible()
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    expect(page.get_by_text("Errored (0)")).to_be_visible()
    _shot(page, screenshots, "micro_mtp_run")
