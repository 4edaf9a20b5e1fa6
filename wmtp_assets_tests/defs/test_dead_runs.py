"""Pool slots of a SIGKILLed run are freed, so a rerun starts at once (issue 18, 7)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

from wmtp_assets.defs.dead_runs import free_slots_of_dead_runs, free_slots_of_dead_runs_sensor

HOLD = textwrap.dedent(
    """
    import os, sys, time
    import dagster as dg
    from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
    with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
        run = instance.get_run_by_id(sys.argv[2])
        started = DagsterEvent(  # as a step process records itself: with its pid
            DagsterEventType.ENGINE_EVENT.value,
            run.job_name,
            event_specific_data=EngineEventData(),
            message="step",
            pid=os.getpid(),
        )
        instance.report_dagster_event(started, run.run_id)
        claim = instance.event_log_storage.claim_concurrency_slot("gpu", run.run_id, "forward")
        assert claim.is_claimed, claim
        print("held", flush=True)
        time.sleep(120)
    """
)


def _started_run(instance: dg.DagsterInstance) -> DagsterRun:
    run = DagsterRun(
        job_name="__ASSET_JOB", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED
    )
    instance.add_run(run)
    return run


def test_a_sigkilled_runs_gpu_slot_is_freed_and_a_rerun_claims_it_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.set_concurrency_slots("gpu", 1)
        killed = _started_run(instance)
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(home), killed.run_id], stdout=subprocess.PIPE
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
        rerun = _started_run(instance)
        storage = instance.event_log_storage
        assert not storage.claim_concurrency_slot("gpu", rerun.run_id, "forward").is_claimed
        assert free_slots_of_dead_runs(instance) == [], "a live holder keeps its slot"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not storage.claim_concurrency_slot("gpu", rerun.run_id, "forward").is_claimed
        assert free_slots_of_dead_runs(instance) == [killed.run_id]
        assert storage.claim_concurrency_slot("gpu", rerun.run_id, "forward").is_claimed
        failed = instance.get_run_by_id(killed.run_id)
        assert failed is not None and failed.status == DagsterRunStatus.FAILURE
        assert free_slots_of_dead_runs(instance) == [], "the rerun's own slot is kept"


def test_the_sensor_is_part_of_the_definitions() -> None:
    from wmtp_assets.definitions import defs

    assert free_slots_of_dead_runs_sensor in list(defs.sensors or [])
    assert free_slots_of_dead_runs_sensor.name == "free_slots_of_dead_runs"
