"""A live ``dagster-webserver`` on the real ``workspace.yaml``, shared by the entry-point tests.

Started once per session: loading the code location (torch, transformers) costs seconds of CPU,
and the GraphQL and browser tests need the same thing, a webserver whose instance already holds
the micro models' upstream (``models/meta_llama_mtp/raw`` and ``.../tokenizer``, materialized
from the demo mirror), so that materializing ``models/micro_mtp`` needs nothing else.

Runs must start without a daemon. In Dagster 1.13 an instance without ``dagster.yaml`` uses the
QueuedRunCoordinator, which leaves launched runs QUEUED until ``dagster-daemon`` dequeues them.
The temporary DAGSTER_HOME therefore gets a ``dagster.yaml`` that selects the
DefaultRunCoordinator, which starts each run at once in a subprocess of the code server.
"""

from __future__ import annotations

import contextlib
import json
import os
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

import dagster as dg
import pytest

from wmtp_assets.defs.models import meta_llama_mtp_raw, meta_llama_mtp_tokenizer
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.demo.mirror import DemoMirror
from wmtp_assets.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 90.0
TERMINAL_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}

INSTANCE_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""

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


def _materialize_upstream(settings: Settings, dagster_home: Path) -> None:
    """Materialize the raw checkpoint and tokenizer into the instance the webserver will use."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        result = dg.materialize(
            [meta_llama_mtp_raw, meta_llama_mtp_tokenizer],
            resources={"wmtp": WmtpResource.from_settings(settings)},
            instance=instance,
        )
    assert result.success


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
    """Stop the webserver's whole process group: it, its code server and any run processes."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="session")
def webserver(
    demo_mirror: DemoMirror, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webserver]:
    root = tmp_path_factory.mktemp("webserver")
    settings = Settings(
        storage_root=root / "storage",
        mirror=demo_mirror.root,
        tokenizer_sha256=demo_mirror.tokenizer_sha256,
        device="cpu",
    )
    dagster_home = root / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    _materialize_upstream(settings, dagster_home)

    # Only the variables set here: a developer's own WMTP_* must not leak into the server.
    env = {key: value for key, value in os.environ.items() if not key.startswith("WMTP_")}
    env |= {
        "DAGSTER_HOME": str(dagster_home),
        "WMTP_STORAGE_ROOT": str(settings.storage_root),
        "WMTP_MIRROR": str(demo_mirror.root),
        "WMTP_TOKENIZER_SHA256": demo_mirror.tokenizer_sha256,
        "WMTP_DEVICE": "cpu",
    }
    port = _free_port()
    server = Webserver(url=f"http://127.0.0.1:{port}", log=root / "webserver.log")
    command = [
        str(Path(sys.executable).with_name("dagster-webserver")),
        *("-w", str(REPO_ROOT / "workspace.yaml")),
        *("-h", "127.0.0.1", "-p", str(port)),
    ]
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
