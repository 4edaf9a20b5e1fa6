"""The Kubernetes config this project produces passes dagster-k8s's own schemas and renders.

Three pieces reach dagster-k8s on the cluster: the ``dagster-k8s/config`` op tag of each step
kind (``defs/k8s.py``), the ``k8s_job_executor`` the definitions select, and the
``K8sRunLauncher`` config the Helm chart writes into the instance's dagster.yaml from
``deploy/k8s/values.yaml``. Each is validated with dagster-k8s's schema, and the step tags are
rendered into a Kubernetes Job by dagster-k8s's own ``construct_dagster_k8s_job``, merged over
the run launcher's ``run_k8s_config`` the way its executor merges them for a step pod.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# dagster-k8s is in the dev extra (README set-up): these tests never skip.
import dagster_k8s
import kubernetes
import pytest
import yaml
from dagster._config import validate_config
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    USER_DEFINED_K8S_CONFIG_KEY,
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)

from wmtp_assets.defs.executor import run_executor
from wmtp_assets.defs.k8s import K8S_CONFIG_TAG, StepKind, k8s_op_tags

VALUES = Path(__file__).parents[2] / "deploy" / "k8s" / "values.yaml"
GPU_NODE_RUN_CONFIG = VALUES.with_name("run-config-convert-on-gpu-node.yaml")
CONVERSION_STEPS = (
    "models__meta_llama_mtp__safetensors",
    "models__ref_sheared_llama_2_7b__safetensors",
    "models__starling_rm_7b__safetensors",
)
KINDS: tuple[StepKind, ...] = ("gpu_check", "convert", "download")

# What the chart's templates/helpers/instance/_run-launcher.tpl ("dagsterYaml.runLauncher.k8s")
# writes for K8sRunLauncher whatever the values say, with the chart's defaults for release
# "wmtp" in namespace "wmtp" (global.dagsterHome, the instance ConfigMap "<fullname>-instance",
# the PostgreSQL secret, loadInclusterConfig, imagePullPolicy, the service account).
CHART_FIXED_FIELDS: dict[str, Any] = {
    "load_incluster_config": True,
    "job_namespace": "wmtp",
    "image_pull_policy": "Always",
    "service_account_name": "wmtp-dagster",
    "dagster_home": "/opt/dagster/dagster_home",
    "instance_config_map": "wmtp-dagster-instance",
    "postgres_password_secret": "dagster-postgresql-secret",
}
# values key under runLauncher.config.k8sRunLauncher.runK8sConfig -> run_k8s_config key, as the
# same template copies them (each subtree verbatim, "toYaml").
RUN_K8S_CONFIG_KEYS = {
    "containerConfig": "container_config",
    "podSpecConfig": "pod_spec_config",
    "podTemplateSpecMetadata": "pod_template_spec_metadata",
    "jobSpecConfig": "job_spec_config",
    "jobMetadata": "job_metadata",
}


def _rendered_run_launcher_config() -> dict[str, Any]:
    """The ``run_launcher.config`` the chart renders from ``deploy/k8s/values.yaml``."""
    run_launcher = yaml.safe_load(VALUES.read_text())["runLauncher"]
    assert run_launcher["type"] == "K8sRunLauncher"
    k8s_values = run_launcher["config"]["k8sRunLauncher"]
    # Only runK8sConfig is rendered below: another key here would need its own template line.
    assert set(k8s_values) == {"runK8sConfig"}, set(k8s_values)
    run_k8s = k8s_values["runK8sConfig"]
    assert set(run_k8s) <= set(RUN_K8S_CONFIG_KEYS), set(run_k8s)
    return {
        **CHART_FIXED_FIELDS,
        "run_k8s_config": {RUN_K8S_CONFIG_KEYS[key]: value for key, value in run_k8s.items()},
    }


def _launcher_context(run_k8s_config: dict[str, Any]) -> K8sContainerContext:
    """The run launcher's share of a pod's context, built as ``create_for_run`` builds it."""
    return K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(run_k8s_config))


def _tags(kind: StepKind) -> dict[str, str]:
    """The op tags of a step of ``kind`` as a run carries them: JSON strings."""
    return {key: json.dumps(value) for key, value in k8s_op_tags(kind).items()}


def _rendered_step_pod(tags: dict[str, str], launcher: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of the step Job dagster-k8s builds from the launcher config and step tags.

    Same merge as ``K8sStepHandler._get_container_context``: the run launcher's
    ``run_k8s_config`` first, the step's ``dagster-k8s/config`` tag over it.
    """
    base = _launcher_context(launcher["run_k8s_config"])
    context = base.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(tags)))
    job = construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(
            job_image="registry.example.com/wmtp-assets:0.1.0",
            dagster_home=launcher["dagster_home"],
            instance_config_map=launcher["instance_config_map"],
            postgres_password_secret=launcher["postgres_password_secret"],
        ),
        args=["dagster", "api", "execute_step"],
        job_name="dagster-step-test",
        user_defined_k8s_config=context.run_k8s_config,
        component="step_worker",
    )
    rendered: dict[str, Any] = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    return rendered["spec"]["template"]["spec"]


@pytest.fixture
def on_k8s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WMTP_K8S", "1")
    monkeypatch.setenv("WMTP_K8S_EXECUTOR", "1")


@pytest.mark.usefixtures("on_k8s")
@pytest.mark.parametrize("kind", KINDS)
def test_step_tag_passes_dagster_k8s_schema(kind: StepKind) -> None:
    tag = k8s_op_tags(kind)[K8S_CONFIG_TAG]
    result = validate_config(dagster_k8s.job.USER_DEFINED_K8S_JOB_CONFIG_SCHEMA, tag)
    assert result.success, result.errors
    assert K8S_CONFIG_TAG == USER_DEFINED_K8S_CONFIG_KEY


@pytest.mark.usefixtures("on_k8s")
def test_step_pods_render_with_gpu_only_for_the_forward_check() -> None:
    launcher = _rendered_run_launcher_config()
    pods = {kind: _rendered_step_pod(_tags(kind), launcher) for kind in KINDS}
    untagged = _rendered_step_pod({}, launcher)

    gpu = pods["gpu_check"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu[
        "tolerations"
    ]
    for kind in ("convert", "download"):
        assert "nvidia.com/gpu" not in pods[kind]["containers"][0]["resources"]["limits"]
        assert "tolerations" not in pods[kind]
    # Every tagged step gets its own requests, not the run pod's; an untagged step inherits the
    # run pod's container_config from values.yaml (the executor merges it into every step).
    run_resources = launcher["run_k8s_config"]["container_config"]["resources"]
    assert untagged["containers"][0]["resources"] == run_resources
    for kind, pod in pods.items():
        tag_resources = k8s_op_tags(kind)[K8S_CONFIG_TAG]["container_config"]["resources"]
        assert pod["containers"][0]["resources"]["requests"] == tag_resources["requests"]


def test_misspelled_step_tag_fails_dagster_k8s_validation() -> None:
    typo = {"container_configs": {"resources": {}}}
    assert not validate_config(dagster_k8s.job.USER_DEFINED_K8S_JOB_CONFIG_SCHEMA, typo).success
    with pytest.raises(Exception, match="Unexpected keys in model class V1Container"):
        get_user_defined_k8s_config(
            {K8S_CONFIG_TAG: json.dumps({"container_config": {"resource": {}}})}
        )


@pytest.mark.usefixtures("on_k8s")
def test_executor_is_k8s_job_executor_with_valid_default_config() -> None:
    executor = run_executor()
    assert executor is dagster_k8s.k8s_job_executor
    schema = executor.config_schema.config_type
    assert validate_config(schema, {}).success  # the deployment passes no execution config
    assert not validate_config(schema, {"max_concurent": 2}).success
    assert not validate_config(schema, {"max_concurrent": "two"}).success


def test_helm_run_launcher_config_passes_k8s_run_launcher_schema() -> None:
    config = _rendered_run_launcher_config()
    schema = dagster_k8s.K8sRunLauncher.config_type()
    result = validate_config(schema, config)
    assert result.success, result.errors
    # The container_config is applied as a V1Container: its keys must be the model's.
    _launcher_context(config["run_k8s_config"])

    wrong = {**config, "run_k8s_config": {"container_config": {"resource": {}}}}
    with pytest.raises(Exception, match="Unexpected keys in model class V1Container"):
        _launcher_context(wrong["run_k8s_config"])
    assert not validate_config(schema, {**config, "job_namespaces": "wmtp"}).success
    assert not validate_config(schema, {**config, "load_incluster_config": "yes"}).success


@pytest.mark.usefixtures("on_k8s")
def test_gpu_node_run_config_passes_the_executor_schema_and_places_the_conversion_pods() -> None:
    execution = yaml.safe_load(GPU_NODE_RUN_CONFIG.read_text())["execution"]["config"]
    schema = dagster_k8s.k8s_job_executor.config_schema.config_type
    result = validate_config(schema, execution)
    assert result.success, result.errors
    per_step = execution["per_step_k8s_config"]
    assert set(per_step) == set(CONVERSION_STEPS)
    launcher = _rendered_run_launcher_config()
    base = _launcher_context(launcher["run_k8s_config"])
    for step in CONVERSION_STEPS:
        tagged = base.merge(
            K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(_tags("convert")))
        )
        # k8s_job_executor's order: run launcher, step tag, then per_step_k8s_config
        context = tagged.merge(
            K8sContainerContext(
                run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(per_step[step])
            )
        )
        job = construct_dagster_k8s_job(
            job_config=DagsterK8sJobConfig(
                job_image="registry.example.com/wmtp-assets:0.1.0",
                dagster_home=launcher["dagster_home"],
                instance_config_map=launcher["instance_config_map"],
            ),
            args=["dagster", "api", "execute_step"],
            job_name="dagster-step-test",
            user_defined_k8s_config=context.run_k8s_config,
            component="step_worker",
        )
        pod = kubernetes.client.ApiClient().sanitize_for_serialization(job)["spec"]["template"]
        assert pod["spec"]["nodeSelector"] == {"wmtp/role": "gpu"}
        resources = pod["spec"]["containers"][0]["resources"]
        assert resources["requests"] == {"cpu": "2", "memory": "2Gi"}  # still the convert tag
        assert "nvidia.com/gpu" not in resources["limits"]
    typo = {"per_step_k8s_config": {CONVERSION_STEPS[0]: {"pod_spec_configs": {}}}}
    assert not validate_config(schema, typo).success


def test_definitions_load_with_the_k8s_executor_where_dagster_k8s_is_installed() -> None:
    """The code server's import under the Helm values' variables, in a fresh interpreter."""
    script = (
        "from wmtp_assets.definitions import defs\n"
        "job = defs.get_job_def('revalidate')\n"
        "print(job.executor_def.name)\n"
    )
    env = {**os.environ, "WMTP_K8S": "1", "WMTP_K8S_EXECUTOR": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == dagster_k8s.k8s_job_executor.name
