"""The web UI as a newcomer starts it, shared by the entry-point tests: ``wmtp-assets ui`` (which
runs ``dagster dev``: webserver, daemon, one code server) on the storage root and Dagster instance
``wmtp-assets demo`` built, with no ``WMTP_*`` or ``DAGSTER_HOME`` in the environment.

Started once per session (loading the code location costs tens of seconds of CPU on a small
machine) on a private copy of the demo's root, since the tests materialize into it. Runs are
queued and started by the daemon, as in ``dagster dev``. ``wmtp-assets ui`` hands its arguments
to ``dagster dev``; the port and host go through click's environment variables for them
(``DAGSTER_CLI_DEV_PORT``, ``DAGSTER_CLI_DEV_HOST``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wmtp_assets.dev_server import GRACE_S
from wmtp_assets.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 120.0
TERMINAL_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}

LOCATION_STATUS_QUERY = """
{
  workspaceOrError {
    ... on Workspace { locationEntries { name loadStatus } }
    ... on PythonError { message }
  }
}
"""

RUN_STATUS_QUERY = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status }
    ... on PythonError { message }
  }
}
"""

RUN_EVENTS_QUERY = """
query RunEvents($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run {
      status
      eventConnection {
        events {
          __typename
          ... on MessageEvent { message level stepKey }
          ... on ErrorEvent { error { message causes { message } } }
          ... on AssetCheckEvaluationEvent {
            evaluation { checkName success assetKey { path } }
          }
        }
      }
    }
  }
}
"""


@dataclass(frozen=True)
class FinishedRun:
    """A run in a terminal state with its event log, as the webserver reports them."""

    run_id: str
    status: str
    events: list[dict[str, Any]]

    def errors(self) -> str:
        """The run's ERROR-level messages and attached errors, to explain a failure."""
        lines = [f"run {self.run_id} ended {self.status}"]
        for event in self.events:
            error = event.get("error") or {}
            if event.get("level") == "ERROR" or error:
                lines.append(f"[{event.get('stepKey') or '-'}] {event.get('message', '')}")
                errors = [error, *error.get("causes", [])] if error else []
                lines += [item["message"].strip() for item in errors]
        return "\n".join(lines)

    def check_evaluations(self, asset_path: list[str]) -> dict[str, bool]:
        """Check name -> passed, for every asset check the run evaluated on ``asset_path``."""
        return {
            event["evaluation"]["checkName"]: event["evaluation"]["success"]
            for event in self.events
            if event["__typename"] == "AssetCheckEvaluationEvent"
            and event["evaluation"]["assetKey"]["path"] == asset_path
        }


@dataclass(frozen=True)
class Webserver:
    """Base URL of the running webserver, its log file, and a small GraphQL client."""

    url: str
    log: Path

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST ``query`` to ``/graphql``; return ``data``, failing on any GraphQL error."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            pytest.fail(f"GraphQL HTTP {exc.code}: {exc.read().decode(errors='replace')}")
        if body.get("errors"):
            pytest.fail(f"GraphQL errors: {json.dumps(body['errors'], indent=1)}")
        return body["data"]

    def wait_for_run(self, run_id: str, timeout_s: float) -> FinishedRun:
        """Poll the run until it ends, then fetch its events; fail if it outlives ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        status = "UNKNOWN"
        while time.monotonic() < deadline:
            run = self.graphql(RUN_STATUS_QUERY, {"runId": run_id})["runOrError"]
            if run["__typename"] != "Run":
                pytest.fail(f"run {run_id}: {run}")
            status = run["status"]
            if status in TERMINAL_STATUSES:
                run = self.graphql(RUN_EVENTS_QUERY, {"runId": run_id})["runOrError"]
                return FinishedRun(run_id, run["status"], run["eventConnection"]["events"])
            time.sleep(1.0)
        pytest.fail(f"run {run_id} still {status} after {timeout_s:.0f}s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-8000:]


def _wait_until_ready(server: Webserver, process: subprocess.Popen[bytes]) -> None:
    """Wait for ``/server_info``, then for the code location to finish loading."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster-webserver exited {process.returncode}:\n{_log_tail(server.log)}")
        try:
            with urllib.request.urlopen(f"{server.url}/server_info", timeout=5):
                pass
            workspace = server.graphql(LOCATION_STATUS_QUERY)["workspaceOrError"]
            entries = workspace.get("locationEntries", [])
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.5)
    pytest.fail(
        f"dagster-webserver not ready after {STARTUP_TIMEOUT_S:.0f}s:\n{_log_tail(server.log)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop ``wmtp-assets ui`` as a service manager would, with SIGTERM to it alone: it stops
    ``dagster dev``'s whole process group (webserver, daemon, code server, run workers) and
    waits for it (``test_cli`` proves nothing is left). Killed only if it outlives the grace."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=GRACE_S + 30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="session")
def ui_storage(demo_storage: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the demo's storage root, its Dagster instance included."""
    root = tmp_path_factory.mktemp("ui") / "storage"
    shutil.copytree(demo_storage.storage_root, root, symlinks=True)
    return root


@pytest.fixture(scope="session")
def webserver(ui_storage: Path) -> Iterator[Webserver]:
    port = _free_port()
    server = Webserver(url=f"http://127.0.0.1:{port}", log=ui_storage.parent / "dagster_dev.log")
    # The newcomer's environment: none of a developer's WMTP_* or DAGSTER_HOME; the venv's
    # scripts on PATH (``ui`` execs ``dagster``).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WMTP_", "DAGSTER_"))}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "DAGSTER_CLI_DEV_PORT": str(port),
        "DAGSTER_CLI_DEV_HOST": "127.0.0.1",
    }
    command = [sys.executable, "-m", "wmtp_assets.cli", "--storage-root", str(ui_storage), "ui"]
    with server.log.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(server, process)
        yield server
    finally:
        _stop(process)
