"""What an asset check is (``CheckSpec``), what its body reads (``CheckInput``), and how the
checks of one dataset step run together (``run_step_checks``), for ``defs.checks``.

The checks of a dataset step read the same big files (the train JSONL is ~4 GB at full size):
here they read each once, and use the cores.
"""

import contextvars
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType

import dagster as dg

from wmtp_assets.data.partitions import Partition
from wmtp_assets.defs.resources import WmtpResource
from wmtp_assets.validate import sealed
from wmtp_assets.validate.jsonl_pass import LineCheck, run_pass
from wmtp_assets.validate.outcome import CheckOutcome, guarded


@dataclass(frozen=True)
class CheckInput:
    """What a check body reads: the resource, the partition (dataset checks) and, for the
    sealed check only, the instance and the asset."""

    wmtp: WmtpResource
    partition: Partition | None
    instance: dg.DagsterInstance
    asset: dg.AssetKey

    @property
    def part(self) -> Partition:
        assert self.partition is not None, "dataset checks run per partition"
        return self.partition


Body = Callable[[CheckInput], CheckOutcome]
Outcomes = dict[dg.AssetCheckKey, CheckOutcome]
Share = Callable[[CheckInput], tuple[Path, LineCheck]]
"""A check that is a share of one pass over a file: the file, and what the check does per line."""


@dataclass(frozen=True)
class CheckSpec:
    """One asset check: ``name`` is also the pure function in ``source`` that documents it."""

    asset: dg.AssetKey
    name: str
    body: Body
    source: ModuleType
    blocking: bool = False
    gpu: bool = False
    partitioned: bool = False
    share: Share | None = None


def run_step_checks(
    specs: Sequence[CheckSpec], given: Callable[[CheckSpec], CheckInput]
) -> Outcomes:
    """Outcomes by check key. Checks that share a file read it in one
    pass (``jsonl_pass.run_pass``); the passes and the other checks run on a thread pool as wide
    as the cores (hashing, Arrow and SentencePiece release the GIL); the seals run last, so they
    find the hashes the passes recorded in ``shared_hashes`` instead of reading the files again.
    """
    groups: dict[Path, dict[dg.AssetCheckKey, LineCheck]] = {}
    outcomes: Outcomes = {}
    tasks: list[Callable[[], Outcomes]] = []
    seals: list[Callable[[], Outcomes]] = []
    for spec in specs:
        share = spec.share
        if share is not None:
            planned = guarded(partial(_plan, share, spec, given, groups))
            if not planned.passed:
                outcomes[_key(spec)] = planned
            continue
        task = partial(_run_single, spec, given(spec))
        (seals if spec.source is sealed else tasks).append(task)
    for path, checks in groups.items():
        tasks.insert(0, partial(run_pass, path, checks))
    for batch in (tasks, seals):
        outcomes.update(_in_parallel(batch))
    return outcomes


def _key(spec: CheckSpec) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(spec.asset, spec.name)


def _plan(
    share: Share,
    spec: CheckSpec,
    given: Callable[[CheckSpec], CheckInput],
    groups: dict[Path, dict[dg.AssetCheckKey, LineCheck]],
) -> CheckOutcome:
    path, check = share(given(spec))
    groups.setdefault(path, {})[_key(spec)] = check
    return CheckOutcome.ok("planned")


def _run_single(spec: CheckSpec, check_input: CheckInput) -> Outcomes:
    return {_key(spec): guarded(partial(spec.body, check_input))}


def _in_parallel(tasks: Sequence[Callable[[], Outcomes]]) -> Outcomes:
    """Run ``tasks`` on up to ``os.cpu_count()`` threads, each in a copy of this context (the
    step's ``shared_hashes``); memory stays bounded: each check's own bound, times the cores."""
    if len(tasks) <= 1:
        return {k: v for task in tasks for k, v in task().items()}
    workers = min(len(tasks), os.cpu_count() or 1)
    results: Outcomes = {}
    with ThreadPoolExecutor(workers, "check") as pool:
        futures = [pool.submit(contextvars.copy_context().run, task) for task in tasks]
        for future in futures:
            results.update(future.result())
    return results
