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


# Only public Dagster API: the config schemas and creation functions of Dagster's own in-process
# and multiprocess executors, and InitExecutorContext; the choice between them is made here.
_IN_PROCESS = dg.in_process_executor.config_schema.as_field()
_MULTIPROCESS = dg.multiprocess_executor.config_schema.as_field()


@dg.executor(
    name="wmtp_local",
    config_schema=dg.Field(
        dg.Selector(  # type: ignore[no-untyped-call]
            {
                "auto": dg.Field(
                    {"in_process": _IN_PROCESS, "multiprocess": _MULTIPROCESS},
                    description="Choose per run; each branch's config applies when chosen.",
                ),
                "in_process": _IN_PROCESS,
                "multiprocess": _MULTIPROCESS,
            }
        ),
        default_value={"auto": {}},
        description="`auto` (default) chooses per run; name one to force it.",
    ),
    requirements=[
        dg.ExecutorRequirement.RECONSTRUCTABLE_PIPELINE,
        dg.ExecutorRequirement.NON_EPHEMERAL_INSTANCE,
        dg.ExecutorRequirement.PERSISTENT_OUTPUTS,
    ],
)
def local_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Multiprocess (forkserver, preloaded) for runs with an isolated step, else in-process;
    ``multiprocess`` or ``in_process`` in the run's execution config forces one."""
    chosen: dict[str, dict[str, Any]] = dict(init_context.executor_config)  # type: ignore[arg-type]
    ((mode, config),) = chosen.items()
    if mode == "auto":
        isolated = needs_isolation(init_context.job.get_definition())
        mode = "multiprocess" if isolated else "in_process"
        config = config[mode]
    target = dg.multiprocess_executor if mode == "multiprocess" else dg.in_process_executor
    if mode == "multiprocess" and not config.get("start_method"):
        config = {**config, "start_method": {"forkserver": {"preload_modules": PRELOADED}}}
    create = target.executor_creation_fn
    assert create is not None, target.name
    return create(
        dg.InitExecutorContext(
            job=init_context.job,
            executor_def=target,
            executor_config=config,
            instance=init_context.instance,
        )
    )


def run_executor() -> dg.ExecutorDefinition:
    return k8s_executor() or local_executor
