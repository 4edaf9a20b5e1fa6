"""The executor every job of the code location runs with, and the step tags it reads.

On Kubernetes (``WMTP_K8S_EXECUTOR=1``) each step is its own pod (``k8s.k8s_executor``).
Elsewhere a run whose steps include a conversion or a GPU check keeps every step in its own
process (a conversion's memory or a CUDA context ends with its step), forked from one
``forkserver`` that has already imported Dagster, torch and this package. Any other run (a
dataset partition, the micro models, a revalidation) runs its steps in the run's own process:
there a step's work is often under a second, and each forked step cost 1.5-2 s more to start.
Dagster picks one executor per run, so the choice is per run, from the tag ``wmtp/isolated`` that
``step_tags`` puts on those steps.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

# Dagster exposes the in-process and multiprocess executors only as ExecutorDefinitions; one that
# picks between them per run has to build them itself (their constructors are not public API).
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    _core_multiprocess_executor_creation,
    multiple_process_executor_requirements,
)
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.base import Executor
from dagster._core.executor.in_process import InProcessExecutor

from wmtp_assets.defs.k8s import StepKind, k8s_executor, k8s_op_tags

PRELOADED = ["wmtp_assets.definitions"]
ISOLATED_TAG = "wmtp/isolated"
ISOLATED_KINDS: frozenset[StepKind] = frozenset({"convert", "gpu_check"})
"""Steps that need a process of their own: a conversion's memory, a CUDA context."""


def step_tags(kind: StepKind) -> dict[str, Any]:
    """Op tags for a step of ``kind``: its pod size on Kubernetes, and ``wmtp/isolated`` for
    the kinds that must not share the run's process."""
    tags = k8s_op_tags(kind)
    if kind in ISOLATED_KINDS:
        tags[ISOLATED_TAG] = "true"
    return tags


def needs_isolation(job: dg.JobDefinition) -> bool:
    """True when some step of ``job`` (as subset for this run) is tagged ``wmtp/isolated``."""
    return any(node.tags.get(ISOLATED_TAG) == "true" for node in job.graph.nodes)


@dg.executor(
    name="wmtp_local",
    config_schema=dg.Field(
        dg.Selector({"multiprocess": MULTI_PROC_CONFIG, "in_process": IN_PROC_CONFIG}),  # type: ignore[no-untyped-call]
        is_required=False,
        description="Omit to choose per run; name one to force it (as Dagster's default).",
    ),
    requirements=multiple_process_executor_requirements(),
)
def local_executor(init_context: dg.InitExecutorContext) -> Executor:
    """Multiprocess (forkserver, preloaded) for runs with an isolated step, else in-process;
    ``multiprocess`` or ``in_process`` in the run's execution config forces one."""
    chosen: dict[str, Any] = dict(init_context.executor_config or {})
    if "in_process" in chosen or (
        "multiprocess" not in chosen and not needs_isolation(init_context.job.get_definition())
    ):
        retries = (chosen.get("in_process") or {}).get("retries", {"enabled": {}})
        return InProcessExecutor(retries=RetryMode.from_config(retries))  # type: ignore[arg-type]
    config = dict(chosen.get("multiprocess") or {"retries": {"enabled": {}}})
    config.setdefault("start_method", {"forkserver": {"preload_modules": PRELOADED}})
    return _core_multiprocess_executor_creation(config)


def run_executor() -> dg.ExecutorDefinition:
    return k8s_executor() or local_executor
