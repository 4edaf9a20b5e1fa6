"""FSDP wrapping of the MTP Transformer: one unit per block, same numbers as the plain module.

On CPU only FSDP2 (``fully_shard``) runs: FSDP1 refuses to start without an accelerator, so its
test (``auto_wrap_policy=fsdp_wrap_policy()``) runs only where CUDA is present. A single-rank
process group is enough to prove the wrapping, the hooks and the gradient path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from wmtp_assets.models.mtp.args import ModelArgs
from wmtp_assets.models.mtp.model import Transformer, TransformerBlock, fsdp_wrap_policy

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch built without distributed")

ARGS = ModelArgs(
    dim=32,
    n_layers=4,
    n_heads=4,
    n_kv_heads=2,
    vocab_size=37,
    multiple_of=16,
    n_future_tokens=3,
    max_seq_len=32,
)
SEED = 5
N_BLOCKS = ARGS.n_trunk_layers + ARGS.n_extra_heads


@pytest.fixture
def process_group(tmp_path: Path) -> Iterator[None]:
    assert not dist.is_initialized(), "another test left a process group behind"
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _plain(device: str = "cpu") -> Transformer:
    model = Transformer(ARGS).to(device)
    model.init_weights(SEED, std=0.1)
    return model


def _loss(model: torch.nn.Module, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, ARGS.vocab_size, (2, 7), generator=generator).to(device)
    targets = torch.randint(0, ARGS.vocab_size, (2, 7, 3), generator=generator).to(device)
    logits = model(tokens)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 2), targets.flatten())
    loss.backward()
    return logits.detach(), loss.detach()


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, TransformerBlock)]


def test_policy_wraps_exactly_the_blocks() -> None:
    policy = fsdp_wrap_policy()
    model = Transformer(ARGS)
    wrapped = [m for m in model.modules() if policy(module=m, recurse=False, nonwrapped_numel=0)]
    assert wrapped == [*model.layers, *model.extra_heads]
    assert policy(module=model, recurse=True, nonwrapped_numel=0)


def _fully_shard(model: Transformer) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (1,))
    for block in _blocks(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


@pytest.mark.usefixtures("process_group")
def test_fully_shard_per_block_gives_the_plain_gradients() -> None:
    from torch.distributed.fsdp import FSDPModule

    plain, sharded = _plain(), _plain()
    _fully_shard(sharded)
    assert isinstance(sharded, FSDPModule)
    assert len(_blocks(sharded)) == N_BLOCKS == 4
    assert all(isinstance(block, FSDPModule) for block in _blocks(sharded))

    expected_logits, expected_loss = _loss(plain)
    logits, loss = _loss(sharded)
    torch.testing.assert_close(logits, expected_logits, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(loss, expected_loss, atol=1e-6, rtol=1e-6)
    plain_params = dict(plain.named_parameters())
    sharded_params = dict(sharded.named_parameters())
    assert sharded_params.keys() == plain_params.keys()
    for name, param in sharded_params.items():
        assert param.grad is not None, name
        grad = param.grad.full_tensor()
        torch.testing.assert_close(grad, plain_params[name].grad, atol=1e-6, rtol=1e-5)


@pytest.mark.usefixtures("process_group")
def test_meta_build_shard_then_materialise() -> None:
    with torch.device("meta"):
        model = Transformer(ARGS)
    _fully_shard(model)
    model.to_empty(device="cpu")
    model.init_weights(SEED, std=0.1)
    expected_logits, _ = _loss(_plain())
    logits, _ = _loss(model)
    torch.testing.assert_close(logits, expected_logits, atol=1e-6, rtol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FSDP1 needs an accelerator")
@pytest.mark.usefixtures("process_group")
def test_fsdp1_auto_wrap_policy_on_cuda() -> None:
    from torch.distributed.fsdp import FullyShardedDataParallel

    plain = _plain("cuda")
    wrapped = FullyShardedDataParallel(
        _plain("cuda"),
        auto_wrap_policy=fsdp_wrap_policy(),
        device_id=torch.cuda.current_device(),
        use_orig_params=True,  # summon_full_params(with_grads=True) needs it
    )
    fsdp_units = [m for m in wrapped.modules() if isinstance(m, FullyShardedDataParallel)]
    assert len(fsdp_units) == 1 + N_BLOCKS  # the root and one unit per block
    expected_logits, _ = _loss(plain, "cuda")
    logits, _ = _loss(wrapped, "cuda")
    torch.testing.assert_close(logits, expected_logits, atol=1e-5, rtol=1e-5)
    with FullyShardedDataParallel.summon_full_params(wrapped, with_grads=True):
        grads = {n: p.grad for n, p in wrapped.named_parameters()}
        for name, param in plain.named_parameters():
            key = next(k for k in grads if k.replace("_fsdp_wrapped_module.", "") == name)
            torch.testing.assert_close(grads[key], param.grad, atol=1e-5, rtol=1e-4)
