"""A raw fetch's wait for the "download" pool slot names the holder, is bounded by
WMTP_LOCK_TIMEOUT, and a killed holder never blocks a rerun (issue 18, 7)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

from wmtp_assets.defs import download_slot as slot_module
from wmtp_assets.defs.download_slot import POOL, download_slot
from wmtp_assets.demo.mirror import DemoMirror
from wmtp_assets.files.layout import Layout
from wmtp_assets.files.lock import artifact_lock

DAGSTER = str(Path(sys.executable).with_name("dagster"))
ROOT = Path(__file__).parents[2]
WAIT_S = 2.0


@dg.asset
def fetch(context: dg.AssetExecutionContext) -> None:
    with download_slot(context, WAIT_S):
        pass


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """An instance with the packaged ``dagster.yaml`` (pool default limit 1)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(str(files("wmtp_assets") / "dagster.yaml"), home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as opened:
        yield opened


def _user_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id) if e.user_message]


def test_a_wait_names_the_holder_at_its_start_and_periodically_then_gives_up(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slot_module, "POLL_S", 0.1)
    monkeypatch.setattr(slot_module, "ANNOUNCE_EVERY_S", 0.7)
    holder = DagsterRun(job_name="other", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED)
    instance.add_run(holder)  # no process recorded: nothing to tell it is dead, so it keeps it
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(POOL)  # dagster.yaml's default_limit: 1
    assert storage.claim_concurrency_slot(POOL, holder.run_id, "other_step").is_claimed

    started = time.monotonic()
    result = dg.materialize([fetch], instance=instance, raise_on_error=False)
    assert not result.success
    assert time.monotonic() - started < 30
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None and error.cause is not None  # the asset's own error, unwrapped
    message = error.cause.message.strip()
    assert "\n" not in message
    held = rf"held by run {holder.run_id} \(step other_step, since \d{{4}}-\d\d-\d\dT[\d:]+"
    assert re.search(held + r".*gave up after waiting 2s \(WMTP_LOCK_TIMEOUT\)", message)
    waits = [m for m in _user_messages(instance, result.run_id) if "held by" in m]
    assert len(waits) >= 2, waits  # at the start, then again while it waits
    assert re.search(held + r".*; waiting up to 2s \(WMTP_LOCK_TIMEOUT\)", waits[0])
    assert re.search(held + r".*; waited \ds, waiting up to 2s", waits[1]), waits
    info = storage.get_concurrency_info(POOL)
    assert {s.run_id for s in info.pending_steps} == {holder.run_id}, "its claim is withdrawn"

    storage.free_concurrency_slots_for_run(holder.run_id)
    rerun = dg.materialize([fetch], instance=instance)
    assert not [m for m in _user_messages(instance, rerun.run_id) if "held by" in m]
    record = instance.get_run_by_id(rerun.run_id).tags[slot_module.HOLDER_TAG + "fetch"]
    assert record.startswith(f"pid {os.getpid()} on {socket.gethostname()} since ")
    info = storage.get_concurrency_info(POOL)
    assert not info.claimed_slots and not info.pending_steps, "given back when the step ended"
    assert info.slot_count == 1


def test_the_slot_is_given_back_when_the_fetch_fails(instance: dg.DagsterInstance) -> None:
    @dg.asset
    def failing(context: dg.AssetExecutionContext) -> None:
        with download_slot(context, WAIT_S):
            assert instance.event_log_storage.get_concurrency_info(POOL).claimed_slots
            raise OSError("no route to host")

    assert not dg.materialize([failing], instance=instance, raise_on_error=False).success
    info = instance.event_log_storage.get_concurrency_info(POOL)
    assert not info.claimed_slots and not info.pending_steps


def test_a_pool_without_a_limit_is_not_claimed(tmp_path: Path) -> None:
    with dg.DagsterInstance.from_config(str(tmp_path)) as bare:  # no dagster.yaml: no limit
        assert dg.materialize([fetch], instance=bare).success
        assert not bare.event_log_storage.get_concurrency_run_ids()


def _materialize(env: dict[str, str], *select: str) -> subprocess.Popen[str]:
    command = [DAGSTER, "asset", "materialize", "-m", "wmtp_assets.definitions", "--select"]
    return subprocess.Popen(
        [*command, *select],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _output(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """What ``proc`` printed once it ended; killed (and the test failed) if it does not."""
    try:
        return proc.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0]
        raise AssertionError(f"still running after {timeout_s:.0f}s: {out[-3000:]}") from None


def _holder_run(home: Path, timeout_s: float = 180.0) -> str:
    """The run id that claims the download slot, once one has."""
    deadline = time.monotonic() + timeout_s
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while time.monotonic() < deadline:
            claimed = instance.event_log_storage.get_concurrency_info(POOL).claimed_slots
            if claimed:
                return claimed[0].run_id
            time.sleep(0.5)
    raise AssertionError("no run claimed the download slot")


def test_concurrent_headless_runs_name_the_holder_give_up_bounded_and_a_killed_one_blocks_none(
    demo_mirror: DemoMirror, tmp_path: Path
) -> None:
    """Two ``dagster asset materialize`` processes: the second waits for the first's slot
    (held while the first waits for an artifact lock this test keeps), names it, gives up
    after WMTP_LOCK_TIMEOUT. Then the first is SIGKILLed and a rerun gets the slot at once."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(str(files("wmtp_assets") / "dagster.yaml"), home / "dagster.yaml")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DAGSTER_HOME": str(home),
        "WMTP_STORAGE_ROOT": str(tmp_path / "storage"),
        "WMTP_MIRROR": str(demo_mirror.root),
        "WMTP_TOKENIZER_SHA256": demo_mirror.tokenizer_sha256,
        "WMTP_DEVICE": "cpu",
    }
    meta = Layout(tmp_path / "storage").model("meta_llama_mtp").raw.parent
    partition = ("datasets/raw", "--partition", "mbpp.test")
    with artifact_lock(meta):
        first = _materialize({**env, "WMTP_LOCK_TIMEOUT": "300"}, "models/meta_llama_mtp/raw")
        try:
            holder = _holder_run(home)
            second = _materialize({**env, "WMTP_LOCK_TIMEOUT": "2"}, *partition)
            out = _output(second, 90)
            assert second.returncode != 0, out[-3000:]
            named = (
                rf"held by run {holder} \(step models__meta_llama_mtp__raw, pid {first.pid} on "
                rf"{re.escape(socket.gethostname())} since [^)]*dagster asset materialize"
            )
            assert re.search(named + r".*; waiting up to 2s \(WMTP_LOCK_TIMEOUT\)", out), out
            assert re.search(named + r".*gave up after waiting 2s \(WMTP_LOCK_TIMEOUT\)", out)
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate()
    rerun = _materialize({**env, "WMTP_LOCK_TIMEOUT": "300"}, *partition)
    out = _output(rerun, 120)
    assert rerun.returncode == 0, out[-3000:]
    assert "held by" not in out, "the killed run's slot was freed before the first attempt"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        killed = instance.get_run_by_id(holder)
        assert killed is not None and killed.status == DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_info(POOL).claimed_slots
