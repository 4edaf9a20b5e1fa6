"""Kubernetes pod resources for the heavy steps, as ``dagster-k8s/config`` op tags.

On Kubernetes (``deploy/k8s/``) the code location runs with dagster-k8s's ``k8s_job_executor``,
which gives every step its own pod and reads that pod's container resources and scheduling from
the step's ``dagster-k8s/config`` op tag. ``k8s_op_tags(kind)`` returns that tag for three kinds
of step:

- ``"gpu_check"``: the ``forward_pass`` checks (pool ``gpu``), the only steps that run CUDA:
  one ``nvidia.com/gpu`` and a toleration for the usual GPU-node taint.
- ``"convert"``: the float16 conversions (``models/*/safetensors``). They stream tensors on the
  CPU (mmap read, cast, write; no CUDA), so they get CPU and memory, not a GPU: a GPU request
  would hold a GPU idle for the whole conversion.
- ``"download"``: the Hub fetches (pool ``download``): small CPU and memory.

The tags are only emitted when the environment variable ``WMTP_K8S`` is ``1`` (the Helm values
set it on the code server and, through ``includeConfigInLaunchedRuns``, on run and step pods).
Without it ``k8s_op_tags`` returns ``{}``, so local runs, tests and ``dagster asset
materialize`` on a GPU node carry no Kubernetes tags at all. The variable is read when the
definitions are built, i.e. once per process.

``k8s_executor()`` is the matching executor: ``dagster_k8s.k8s_job_executor`` under
``WMTP_K8S_EXECUTOR=1`` (set beside ``WMTP_K8S`` in the Helm values; dagster-k8s must then be
installed, as in the deployment image: ``pip install '.[k8s]'``), else ``None`` (Dagster's
default executor).
"""

from __future__ import annotations

import copy
import os
from typing import Any, Literal

import dagster as dg

StepKind = Literal["convert", "gpu_check", "download"]

K8S_ENV = "WMTP_K8S"
K8S_EXECUTOR_ENV = "WMTP_K8S_EXECUTOR"
K8S_CONFIG_TAG = "dagster-k8s/config"

_GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# Pod sizes from the measurements in docs/performance.md (7B-shaped checkpoints, dim 4096, FFN
# 11008, vocab 32000). Memory limits count the container's cgroup, which also charges the page
# cache of the mmapped checkpoints; the kernel reclaims those clean pages before it kills the
# pod, so a limit above the anonymous peak is enough. Requests are what the scheduler reserves.
_POD_CONFIG: dict[StepKind, dict[str, Any]] = {
    # forward_pass streams one stage at a time ("Forward-pass check" in docs/performance.md):
    # peak 1028 MB anonymous host memory at K = 4 and K = 8 blocks, flat in K, so the same at the
    # real 32 blocks (interpreter and torch ~220 MB + one fp32 block, 810 MB). On the GPU a stage
    # holds the source and the converted block in fp32 (2 x 810 MB) plus the CUDA context: any
    # GPU with 4 GB is enough (derived from those sizes, not measured on a GPU). The CUDA runtime
    # adds host memory of its own (~1 GB, not measured here), hence 3Gi requested, 6Gi limit.
    # Kubernetes hands out whole GPUs: one nvidia.com/gpu, and the toleration lets the pod onto
    # GPU nodes tainted the usual way (the GPU request alone already keeps it off other nodes).
    "gpu_check": {
        "container_config": {
            "resources": {
                "requests": {"cpu": "2", "memory": "3Gi"},
                "limits": {"memory": "6Gi", "nvidia.com/gpu": "1"},
            }
        },
        "pod_spec_config": {"tolerations": [_GPU_TOLERATION]},
    },
    # The float16 conversion streams tensors from the mmapped checkpoint ("Conversion" in
    # docs/performance.md): peak RSS 997-1000 MB at K = 2, 4, 8, flat in K (interpreter and torch
    # ~240 MB + one reused fp16 buffer of the largest tensor, 262 MB + up to 524 MB of that
    # tensor's mapped pages). 2Gi requested, 4Gi limit leaves room for the configs and the
    # background re-hash of the raw files. CPU: it keeps both cores of the bench machine busy
    # (~1.9 CPU-seconds per GB of fp32 source: SHA256, cast and range check overlap), hence 2.
    "convert": {
        "container_config": {
            "resources": {
                "requests": {"cpu": "2", "memory": "2Gi"},
                "limits": {"memory": "4Gi"},
            }
        },
    },
    # Hub downloads stream to disk and hash as they go; not measured in bench/. The interpreter
    # with torch imported is ~240 MB (docs/performance.md); 2Gi / 8Gi is a generous guess.
    "download": {
        "container_config": {
            "resources": {
                "requests": {"cpu": "1", "memory": "2Gi"},
                "limits": {"memory": "8Gi"},
            }
        },
    },
}


def k8s_enabled() -> bool:
    """Whether this process builds definitions for Kubernetes (``WMTP_K8S=1``)."""
    return os.environ.get(K8S_ENV) == "1"


def k8s_op_tags(kind: StepKind) -> dict[str, Any]:
    """The ``dagster-k8s/config`` op tag for a step of ``kind``; ``{}`` unless ``WMTP_K8S=1``."""
    if not k8s_enabled():
        return {}
    return {K8S_CONFIG_TAG: copy.deepcopy(_POD_CONFIG[kind])}


def k8s_executor() -> dg.ExecutorDefinition | None:
    """``dagster_k8s.k8s_job_executor`` under ``WMTP_K8S_EXECUTOR=1``, else ``None``.

    A separate switch from the tags because dagster-k8s lags dagster's releases (and pins an
    older dagster): it is installed only in the deployment image (extra ``k8s``), while the
    tags can be checked anywhere.
    """
    if os.environ.get(K8S_EXECUTOR_ENV) != "1":
        return None
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as exc:
        raise ImportError(
            f"{K8S_ENV}=1 runs every step as a Kubernetes job and needs dagster-k8s: "
            "pip install 'dagster-k8s>=0.29,<0.30'"
        ) from exc
    return k8s_job_executor
