"""The executor every job of the code location runs with.

On Kubernetes (``WMTP_K8S_EXECUTOR=1``) each step is its own pod (``k8s.k8s_executor``).
Elsewhere steps stay isolated in their own processes (a conversion's memory or a CUDA context
ends with its step), but they are forked from one ``forkserver`` that has already imported
Dagster, torch and this package: under the default ``spawn`` every step paid those imports
again, which made a one-partition run of tiny data take a minute.
"""

import dagster as dg

from wmtp_assets.defs.k8s import k8s_executor

PRELOADED = ["wmtp_assets.definitions"]

local_executor = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": PRELOADED}}},
    name="multiprocess_forkserver",
)


def run_executor() -> dg.ExecutorDefinition:
    return k8s_executor() or local_executor
