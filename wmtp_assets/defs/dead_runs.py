"""Concurrency-pool slots ("gpu", "download") held by runs whose processes are gone.

Why: a step claims a pool slot in the instance and frees it when it ends. A run worker killed
by SIGKILL (OOM killer, ``kill -9``, a closed laptop) frees nothing, its run stays STARTED, and
with the default run launcher Dagster's run monitoring cannot see that the worker died (it has
no health check), so every later run that needs the pool waits in the queue forever.

Contract: a run is dead when it holds slots, is not finished, and none of the processes that
wrote its events (the run worker, its step processes) is alive on this machine. It is then
marked failed, naming the processes, and its slots are freed. Only for an instance on SQLite,
whose runs all ran on this machine (pids elsewhere mean nothing here). The sweep runs when the
CLI opens the instance and every 30 s as the sensor ``free_slots_of_dead_runs`` (under
``dagster dev``), so a rerun starts at once instead of waiting on a slot nobody holds.
"""

import os

import dagster as dg
from dagster._core.storage.dagster_run import FINISHED_STATUSES
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


def _event_pids(instance: dg.DagsterInstance, run_id: str) -> set[int]:
    records = instance.get_records_for_run(run_id, limit=10_000).records
    return {
        r.event_log_entry.dagster_event.pid
        for r in records
        if r.event_log_entry.dagster_event is not None
        and r.event_log_entry.dagster_event.pid is not None
    }


def free_slots_of_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail every dead run that holds pool slots and free its slots; their ids."""
    if not isinstance(instance.run_storage, SqliteRunStorage):
        return []
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    freed: list[str] = []
    for run_id in sorted(storage.get_concurrency_run_ids()):
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in FINISHED_STATUSES:
            storage.free_concurrency_slots_for_run(run_id)  # ended, slots left behind
            freed.append(run_id)
            continue
        pids = _event_pids(instance, run_id)
        if not pids or any(_alive(pid) for pid in pids):
            continue
        if run is not None:
            instance.report_run_failed(
                run,
                f"run worker gone (processes {sorted(pids)} no longer exist, e.g. SIGKILL); "
                "marked failed and its concurrency-pool slots freed",
            )
        storage.free_concurrency_slots_for_run(run_id)
        freed.append(run_id)
    return freed


@dg.sensor(
    name="free_slots_of_dead_runs",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Frees the concurrency-pool slots of runs whose processes are gone "
    "(wmtp_assets.defs.dead_runs).",
)
def free_slots_of_dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    freed = free_slots_of_dead_runs(context.instance)
    return dg.SkipReason(f"freed the slots of {freed}" if freed else "no dead run holds a slot")
