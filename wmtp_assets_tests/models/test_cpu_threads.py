import os
from collections.abc import Iterator

import pytest
import torch

from wmtp_assets.models.cpu_threads import cores_shared_with_io, share_cores_with_io


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_torch_gets_half_the_cores_of_the_affinity_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(7)
    allowed = len(os.sched_getaffinity(0))
    assert share_cores_with_io() == max(1, allowed // 2)
    assert torch.get_num_threads() == max(1, allowed // 2)


def test_an_operators_omp_num_threads_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(3)  # what torch read from the variable at start-up
    assert share_cores_with_io() == 3


def test_the_block_form_gives_the_callers_threads_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(5)
    with cores_shared_with_io() as inside:
        assert torch.get_num_threads() == inside == max(1, len(os.sched_getaffinity(0)) // 2)
    assert torch.get_num_threads() == 5
