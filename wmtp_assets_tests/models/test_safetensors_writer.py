"""The streaming writer is byte-identical to ``safetensors.torch.save_file`` and loads back."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import _TYPES, load_file, save_file

from wmtp_assets.models.safetensors_writer import (
    TensorSpec,
    TensorSpecMismatchError,
    WriteResult,
    build_header,
    safetensors_dtype,
    stage_safetensors,
)


def write_safetensors(
    dest: Path,
    specs: Mapping[str, TensorSpec],
    produce: Callable[[str], torch.Tensor],
    header_metadata: Mapping[str, str] | None = None,
    order: Sequence[str] | None = None,
) -> WriteResult:
    """Stage, then rename into place (what a publish does, without the rest of the artifact)."""
    staged = stage_safetensors(dest, specs, produce, header_metadata, order=order)
    os.replace(staged.path, dest)
    return staged.model_copy(update={"path": dest})


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header as the format defines it (8-byte little-endian length, then JSON)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), 8 + length


def _sample(dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.rand(shape, generator=generator) > 0.5
    if dtype.is_floating_point or dtype.is_complex:
        return (torch.randn(shape, generator=generator) * 3).to(dtype)
    return torch.randint(0, 100, shape, generator=generator).to(dtype)


def _bytes(tensor: torch.Tensor) -> bytes:
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _every_dtype() -> dict[str, torch.Tensor]:
    """One tensor of every dtype the reference supports, plus scalars and zero-size tensors."""
    tensors = {
        f"w.{i}.{str(dtype).removeprefix('torch.')}": _sample(dtype, (3, 5), i)
        for i, dtype in enumerate(_TYPES.values())
    }
    tensors |= {
        "scalar.f32": torch.tensor(2.5),
        "scalar.i64": torch.tensor(7, dtype=torch.int64),
        "empty.f16": torch.zeros(0, 4, dtype=torch.float16),
        "empty.bf16": torch.zeros(4, 0, dtype=torch.bfloat16),
        "a.bf16": _sample(torch.bfloat16, (7,), 99),
        "z.f16": _sample(torch.float16, (2, 3, 4), 98),
        'ünïcode "name"\n': _sample(torch.float32, (2,), 97),
    }
    return tensors


def _write(
    dest: Path,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None,
    order: Sequence[str] | None = None,
) -> None:
    specs = {name: TensorSpec.of(t) for name, t in tensors.items()}
    produced: list[str] = []

    def produce(name: str) -> torch.Tensor:
        produced.append(name)
        return tensors[name]

    result = write_safetensors(dest, specs, produce, metadata, order)
    assert sorted(produced) == sorted(tensors), "each tensor is produced exactly once"
    if order is not None:
        assert produced == list(order), "tensors are produced in the order asked for"
    assert result.sha256 == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert result.size == dest.stat().st_size
    assert result.n_tensors == len(tensors)


def test_every_dtype_in_table() -> None:
    for dtype in _TYPES.values():
        safetensors_dtype(dtype)


@pytest.mark.parametrize(
    "metadata",
    [None, {}, {"format": "pt"}, {'é\n"key\x01\x7f': "value\twith ünicode"}],
    ids=["none", "empty", "one-key", "escapes"],
)
def test_byte_identical_to_save_file(tmp_path: Path, metadata: dict[str, str] | None) -> None:
    tensors = _every_dtype()
    save_file(tensors, tmp_path / "ref.safetensors", metadata=metadata)
    _write(tmp_path / "ours.safetensors", tensors, metadata)
    assert (tmp_path / "ours.safetensors").read_bytes() == (
        tmp_path / "ref.safetensors"
    ).read_bytes()
    loaded = load_file(tmp_path / "ours.safetensors")
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype
        assert loaded[name].shape == tensor.shape
        assert _bytes(loaded[name]) == _bytes(tensor)
    with safe_open(tmp_path / "ours.safetensors", framework="pt") as handle:
        assert handle.metadata() == metadata
        assert torch.equal(handle.get_tensor("z.f16"), tensors["z.f16"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_production_order_writes_the_same_bytes(tmp_path: Path, seed: int) -> None:
    """Out of the file's order (the conversion's forward order) the bytes and the SHA256 (hashed
    from the written prefix) are still save_file's."""
    tensors = _every_dtype()
    tensors["big.f32"] = _sample(torch.float32, (1024, 3000), 5)  # spans several hash chunks
    order = [
        list(tensors)[i]
        for i in torch.randperm(len(tensors), generator=torch.Generator().manual_seed(seed))
    ]
    save_file(tensors, tmp_path / "ref.safetensors", metadata={"format": "pt"})
    _write(tmp_path / "ours.safetensors", tensors, {"format": "pt"}, order)
    assert (tmp_path / "ours.safetensors").read_bytes() == (
        tmp_path / "ref.safetensors"
    ).read_bytes()


def test_an_order_that_misses_a_tensor_is_refused(tmp_path: Path) -> None:
    tensors = {"a": torch.zeros(2), "b": torch.ones(3)}
    specs = {name: TensorSpec.of(t) for name, t in tensors.items()}
    with pytest.raises(ValueError, match="every tensor of the header once"):
        stage_safetensors(tmp_path / "x.safetensors", specs, tensors.__getitem__, order=["b"])
    assert list(tmp_path.iterdir()) == []


def test_several_metadata_keys_sorted(tmp_path: Path) -> None:
    """The reference orders metadata by hash (varies); ours sorts it, all else identical."""
    tensors = {"b": torch.ones(3, dtype=torch.float16), "a": torch.arange(4)}
    metadata = {"zeta": "1", "alpha": "2", "mid": "3"}
    save_file(tensors, tmp_path / "ref.safetensors", metadata=metadata)
    _write(tmp_path / "ours.safetensors", tensors, metadata)
    ours, ours_start = read_header(tmp_path / "ours.safetensors")
    ref, ref_start = read_header(tmp_path / "ref.safetensors")
    assert ours == ref and ours_start == ref_start
    assert list(ours["__metadata__"]) == ["alpha", "mid", "zeta"]
    ours_bytes = (tmp_path / "ours.safetensors").read_bytes()
    assert ours_bytes[ours_start:] == (tmp_path / "ref.safetensors").read_bytes()[ref_start:]
    _write(
        tmp_path / "again.safetensors",
        dict(reversed(tensors.items())),
        dict(reversed(metadata.items())),
    )
    assert (tmp_path / "again.safetensors").read_bytes() == ours_bytes, "input order is irrelevant"


def test_produced_tensor_must_match_spec(tmp_path: Path) -> None:
    dest = tmp_path / "model.safetensors"
    specs = {
        "a": TensorSpec(dtype=torch.float16, shape=(2, 2)),
        "b": TensorSpec(dtype=torch.float16, shape=(3,)),
    }
    with pytest.raises(TensorSpecMismatchError, match=r"'a'.*float32.*float16"):
        write_safetensors(dest, specs, lambda name: torch.zeros(specs[name].shape))  # fp32
    with pytest.raises(TensorSpecMismatchError, match=r"'a'.*\(4,\).*\(2, 2\)"):
        write_safetensors(dest, specs, lambda name: torch.zeros(4, dtype=torch.float16))
    assert list(tmp_path.iterdir()) == []


def test_stage_leaves_temp_file_for_publisher(tmp_path: Path) -> None:
    dest = tmp_path / "model.safetensors"
    tensor = torch.arange(6, dtype=torch.float16)
    seen: list[tuple[str, int]] = []
    result = stage_safetensors(
        dest,
        {"x": TensorSpec.of(tensor)},
        lambda _: tensor,
        {"format": "pt"},
        on_written=lambda name, n: seen.append((name, n)),
    )
    assert not dest.exists()
    assert result.path.parent == tmp_path and result.path.name.startswith(".model.safetensors.tmp-")
    assert seen == [("x", result.size)]
    assert torch.equal(load_file(result.path)["x"], tensor)


def test_failure_in_producer_removes_temp(tmp_path: Path) -> None:
    def produce(name: str) -> torch.Tensor:
        raise RuntimeError(f"cannot produce {name}")

    spec = {"x": TensorSpec(dtype=torch.float16, shape=(1,))}
    with pytest.raises(RuntimeError, match="cannot produce x"):
        stage_safetensors(tmp_path / "m.safetensors", spec, produce)
    assert list(tmp_path.iterdir()) == []


def test_header_rules(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        build_header({"__metadata__": TensorSpec(dtype=torch.float16, shape=())})
    with pytest.raises(ValueError, match="str to str"):
        build_header({}, {"k": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="cannot be stored"):
        TensorSpec(dtype=torch.complex128, shape=(1,))
    assert len(build_header({"a": TensorSpec(dtype=torch.float16, shape=(1,))})) % 8 == 0
