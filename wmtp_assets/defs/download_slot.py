"""The "download" pool slot a raw fetch holds, claimed by the step itself: named, bounded, freed.

Why: the step claims the slot itself, so its wait names the holder and ends at WMTP_LOCK_TIMEOUT;
``pool="download"`` on the assets made Dagster claim it before the step, silently and forever.

Contract: the slot is one of the instance's pool ``download`` (Dagster's own slot table, so
``dagster instance concurrency set download N``, ``dagster.yaml``'s ``default_limit`` and the
UI's pool page apply; a pool with no limit is not claimed). Before each attempt, the slots of
runs whose processes are gone are freed (``dead_runs``), so a killed holder never blocks a
rerun. The holder records itself (pid, host, since when, command) in a run tag; a waiter names
the holder's run, step and that record at the start of its wait and every ``ANNOUNCE_EVERY_S``,
and after ``timeout_s`` raises :class:`PoolSlotBusyError` naming them and WMTP_LOCK_TIMEOUT.
The slot, or the waiting claim, is given back when the block ends, however it ends.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import dagster as dg
from dagster._core.storage.event_log.base import EventLogStorage

from wmtp_assets.defs.dead_runs import free_slots_of_dead_runs
from wmtp_assets.files.lock import holder_line

POOL = "download"
HOLDER_TAG = "wmtp/download_slot/"
"""Run tag prefix (then the step key) under which a slot's holder records itself."""
POLL_S = 1.0
ANNOUNCE_EVERY_S = 30.0


class PoolSlotBusyError(RuntimeError):
    """Every slot of the pool stayed held for longer than the run was willing to wait."""


def _pool_is_limited(storage: EventLogStorage) -> bool:
    """Whether the pool has a limit (set, or the instance's default), put in place as Dagster's
    own claim does (``InstanceConcurrencyContext.claim``)."""
    default = storage.get_pool_config().default_pool_limit
    limit = next((p for p in storage.get_pool_limits() if p.name == POOL), None)
    if (limit is None and default is not None) or (
        limit is not None and limit.from_default and limit.limit != default
    ):
        storage.initialize_concurrency_limit_to_default(POOL)
        return default is not None
    return limit is not None


def slot_holders(instance: dg.DagsterInstance) -> str:
    """Who holds the pool's slots, as a waiter says it: run, step, and the holder's record
    (pid, host, since, command) or, without one, since when the slot was assigned."""
    info = instance.event_log_storage.get_concurrency_info(POOL)
    assigned = {(p.run_id, p.step_key): p.assigned_timestamp for p in info.pending_steps}
    holders = []
    for slot in info.claimed_slots:
        run = instance.get_run_by_id(slot.run_id)
        record = run.tags.get(HOLDER_TAG + slot.step_key) if run is not None else None
        since = assigned.get((slot.run_id, slot.step_key))
        if record is None:
            record = f"since {since.isoformat(timespec='seconds')}" if since else "pid unknown"
        holders.append(f"run {slot.run_id} (step {slot.step_key}, {record})")
    return "; ".join(holders) or f"no run ({info.slot_count} slots)"


def _claim(
    instance: dg.DagsterInstance,
    run_id: str,
    step_key: str,
    timeout_s: float,
    notify: Callable[[str], None],
) -> None:
    storage = instance.event_log_storage
    start = time.monotonic()
    announced: float | None = None
    while True:
        free_slots_of_dead_runs(instance)
        if storage.claim_concurrency_slot(POOL, run_id, step_key).is_claimed:
            return
        now = time.monotonic()
        if now - start >= timeout_s:
            raise PoolSlotBusyError(
                f"pool {POOL!r}: held by {slot_holders(instance)}; gave up after waiting "
                f"{timeout_s:.0f}s (WMTP_LOCK_TIMEOUT). Retry when that run finishes, or end it "
                f"(`dagster instance concurrency set {POOL} N` allows N fetches at once)"
            )
        if announced is None or now - announced >= ANNOUNCE_EVERY_S:
            waited = "waiting" if announced is None else f"waited {now - start:.0f}s, waiting"
            notify(
                f"pool {POOL!r}: held by {slot_holders(instance)}; {waited} up to "
                f"{timeout_s:.0f}s (WMTP_LOCK_TIMEOUT)"
            )
            announced = now
        time.sleep(POLL_S)


@contextlib.contextmanager
def download_slot(context: dg.AssetExecutionContext, timeout_s: float) -> Iterator[None]:
    """Hold a slot of pool ``download`` for the block, waiting up to ``timeout_s`` for one."""
    instance = context.instance
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits or not _pool_is_limited(storage):
        yield
        return
    run_id = context.run.run_id
    step_key = context.get_step_execution_context().step.key
    try:
        _claim(instance, run_id, step_key, timeout_s, context.log.warning)
        instance.add_run_tags(run_id, {HOLDER_TAG + step_key: holder_line()})
        yield
    finally:
        storage.free_concurrency_slot_for_step(run_id, step_key)
