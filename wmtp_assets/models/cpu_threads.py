"""How many threads torch's CPU kernels take in a step.

A heavy step keeps threads of its own busy beside torch (a reader and a SHA256 thread in the
weights scan, the raw files' re-hash and the output's hash in a conversion), and a model's two
check steps run at once. torch's OpenMP workers spin while they wait for a core, so once the
busy threads reach the core count, more torch threads make its kernels slower, not faster: on
two cores next to a hashing thread, ``aminmax`` of float16 ran at 1.0 GB/s with two torch
threads and 9.7 GB/s with one. Half the cores (at least one) go to torch, the rest to those
threads. ``OMP_NUM_THREADS``, when set, is the operator's choice and is kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def cores() -> int:
    """The cores this process may run on (its affinity mask, as a container's limit shows)."""
    return len(os.sched_getaffinity(0))


def share_cores_with_io() -> int:
    """Give torch half the cores unless ``OMP_NUM_THREADS`` is set; the threads it now uses."""
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(max(1, cores() // 2))
    return torch.get_num_threads()


@contextmanager
def cores_shared_with_io() -> Iterator[int]:
    """:func:`share_cores_with_io` for the block only (a pass that hashes beside torch in a
    process whose threads are otherwise the caller's: ``verify`` runs its checks in its own)."""
    before = torch.get_num_threads()
    try:
        yield share_cores_with_io()
    finally:
        torch.set_num_threads(before)
