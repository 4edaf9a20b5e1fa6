"""The web UI, driven like a person would: catalog, asset page, the "Materialize" button.

This proves what the GraphQL test cannot: the UI's own JavaScript renders the code location,
its Materialize button launches a run with the UI's defaults (multiprocess executor), and the
run page shows it succeeding. Uses Debian's Chromium (CI installs it); never a downloaded one.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Response, expect, sync_playwright

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


def _is_launch(response: Response) -> bool:
    """The UI's launch request (the webserver names each GraphQL operation in the URL)."""
    return response.url.endswith("/graphql?op=LaunchPipelineExecution")


def test_materialize_button_builds_micro_mtp(webserver: Webserver, tmp_path: Path) -> None:
    # A fresh instance opens the UI with a "Join the Dagster community" dialog over every page
    # (on 127.0.0.1 only); marking it seen, as its Skip button does, keeps the page usable.
    webserver.graphql("mutation { setNuxSeen }")
    screenshot = tmp_path / "micro_mtp_run.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 900},
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)

            page.goto(f"{webserver.url}/assets")
            asset_link = page.get_by_role("link", name="models / micro_mtp")
            expect(asset_link.first).to_be_visible(timeout=UI_TIMEOUT_MS)
            asset_link.first.click()
            expect(page).to_have_url(
                f"{webserver.url}/assets/models/micro_mtp", timeout=UI_TIMEOUT_MS
            )

            materialize = page.get_by_role("button", name=re.compile(r"Materialize$"))
            with page.expect_response(_is_launch, timeout=UI_TIMEOUT_MS) as launch:
                materialize.click()
            result = launch.value.json()["data"]["launchPipelineExecution"]
            assert result["__typename"] == "LaunchRunSuccess", result
            run_id = result["run"]["id"]

            page.goto(f"{webserver.url}/runs/{run_id}")
            run = webserver.wait_for_run(run_id, timeout_s=150)
            assert run.status == "SUCCESS", run.errors()
            expect(page.get_by_role("img", name="run_success").first).to_be_visible(
                timeout=UI_TIMEOUT_MS
            )
            expect(page.get_by_text("Success", exact=True).first).to_be_visible(
                timeout=UI_TIMEOUT_MS
            )
            expect(page.get_by_text("Errored (0)")).to_be_visible(timeout=UI_TIMEOUT_MS)
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    assert screenshot.stat().st_size > 20_000
    print(f"screenshot of the finished run: {screenshot}")
