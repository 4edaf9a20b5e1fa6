"""``dagster-webserver`` serves the code location's public contract and runs it, over GraphQL.

This is what the UI and any script against the webserver see: the location loads from
``workspace.yaml`` in a fresh process, lists every contract asset key and every asset check, and
a materialization launched through the API succeeds with all of its checks passing.
"""

from __future__ import annotations

from typing import Any

import pytest

from wmtp_assets.definitions import ALL_CHECKS
from wmtp_assets.defs.models import MICRO_MTP
from wmtp_assets.validate.signatures import SIGNATURE_CHECK
from wmtp_assets_tests.entrypoints.conftest import Webserver

LOCATION = "wmtp_assets"

CONTRACT_ASSET_KEYS = [
    "models/meta_llama_mtp/raw",
    "models/meta_llama_mtp/tokenizer",
    "models/meta_llama_mtp/safetensors",
    "models/ref_sheared_llama_2_7b/raw",
    "models/ref_sheared_llama_2_7b/safetensors",
    "models/starling_rm_7b/raw",
    "models/starling_rm_7b/safetensors",
    "models/micro_mtp",
    "models/micro_ref",
    "datasets/raw",
    "datasets/processed",
    "datasets/stats",
    "datasets/small",
    "datasets/problem_index",
]

WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
          ... on RepositoryLocation {
            repositories {
              name
              jobs { name }
              schedules { name scheduleState { status } }
              assetNodes {
                assetKey { path }
                assetChecksOrError {
                  __typename
                  ... on AssetChecks { checks { name } }
                }
              }
            }
          }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

ASSET_JOBS_QUERY = """
query AssetJobs($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) { jobNames }
}
"""

LAUNCH_MUTATION = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def _repository(webserver: Webserver) -> dict[str, Any]:
    """The one repository of location ``wmtp_assets``; fails with the load error if it broke."""
    workspace = webserver.graphql(WORKSPACE_QUERY)["workspaceOrError"]
    assert workspace["__typename"] == "Workspace", workspace
    entries = {entry["name"]: entry for entry in workspace["locationEntries"]}
    assert LOCATION in entries, f"locations served: {sorted(entries)}"
    location = entries[LOCATION]["locationOrLoadError"]
    if location["__typename"] != "RepositoryLocation":
        stack = "".join(location.get("stack") or [])
        pytest.fail(f"{LOCATION} failed to load: {location.get('message')}\n{stack}")
    (repository,) = location["repositories"]
    return repository


def test_location_lists_every_contract_asset_check_job_and_schedule(webserver: Webserver) -> None:
    repository = _repository(webserver)
    served_assets = {"/".join(node["assetKey"]["path"]) for node in repository["assetNodes"]}
    missing = [key for key in CONTRACT_ASSET_KEYS if key not in served_assets]
    assert not missing, f"contract asset keys not served: {missing}"

    served_checks: set[tuple[str, str]] = set()
    for node in repository["assetNodes"]:
        checks = node["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks", checks
        asset = "/".join(node["assetKey"]["path"])
        served_checks |= {(asset, check["name"]) for check in checks["checks"]}
    defined_checks = {
        (key.asset_key.to_user_string(), key.name)
        for check in ALL_CHECKS
        for key in check.check_keys
    }
    assert served_checks == defined_checks

    assert "revalidate" in {job["name"] for job in repository["jobs"]}
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}
    assert schedules.get("revalidate_daily") == "RUNNING", schedules


def test_materializing_micro_mtp_over_graphql_passes_all_its_checks(webserver: Webserver) -> None:
    (node,) = webserver.graphql(ASSET_JOBS_QUERY, {"keys": [{"path": MICRO_MTP.path}]})[
        "assetNodes"
    ]
    (job,) = [name for name in node["jobNames"] if name.startswith("__ASSET_JOB")]
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": _repository(webserver)["name"],
            "pipelineName": job,
            "assetSelection": [{"path": MICRO_MTP.path}],
        },
        # One process for all steps: on a shared 2-core runner, a subprocess per step (each
        # importing torch) costs more than the run itself. The browser test runs the default.
        "runConfigData": {"execution": {"config": {"in_process": {}}}},
    }
    launched = webserver.graphql(LAUNCH_MUTATION, {"params": params})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched

    run = webserver.wait_for_run(launched["run"]["runId"], timeout_s=120)
    assert run.status == "SUCCESS", run.errors()
    expected = {
        key.name for check in ALL_CHECKS for key in check.check_keys if key.asset_key == MICRO_MTP
    }
    # every check passed, but signature_valid, which only the revalidation runs (the signature
    # was just made from this run's digests): it has no evaluation in a materialization
    expected.discard(SIGNATURE_CHECK)
    assert run.check_evaluations(list(MICRO_MTP.path)) == dict.fromkeys(expected, True)
