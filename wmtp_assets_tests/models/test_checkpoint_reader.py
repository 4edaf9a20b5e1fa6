"""Checkpoint readers: weights_only always, mmap where possible, one clear error type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from wmtp_assets.models.checkpoint_reader import (
    CheckpointError,
    load_torch_checkpoint,
    open_checkpoint,
    open_hf_shards,
    release_pages,
)
from wmtp_assets.models.safetensors_writer import TensorSpec
from wmtp_assets_tests.models.checkpoint_fixtures import CodePayload, save_code_carrying, truncate


def _state(n: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {f"layers.{i}.w": torch.randn(64, 256, generator=generator) for i in range(n)}


def test_loads_mapped_and_releases_pages(tmp_path: Path) -> None:
    state = _state()
    path = tmp_path / "consolidated.pth"
    torch.save(state, path)
    loaded = load_torch_checkpoint(path)
    assert loaded.keys() == state.keys()
    for name, tensor in loaded.items():
        assert torch.equal(tensor, state[name])
        assert release_pages(tensor, path) > 0, "a mapped tensor's pages can be released"
        assert torch.equal(tensor, state[name]), "released pages fault back in unchanged"


def test_release_pages_leaves_anonymous_memory_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save(_state(1), path)
    load_torch_checkpoint(path)
    tensor = torch.arange(100_000, dtype=torch.float32)
    assert release_pages(tensor, path) == 0
    assert torch.equal(tensor, torch.arange(100_000, dtype=torch.float32))


def test_legacy_pickle_loads_without_mmap_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pth"
    torch.save(_state(1), path, _use_new_zipfile_serialization=False)
    notes: list[str] = []
    loaded = load_torch_checkpoint(path, notify=notes.append)
    assert torch.equal(loaded["layers.0.w"], _state(1)["layers.0.w"])
    assert len(notes) == 1 and "cannot be memory-mapped" in notes[0] and str(path) in notes[0]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_code_carrying_pickle_is_refused_and_not_run(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "EXECUTED"
    # The payload is real: calling what it pickles as creates a marker file.
    function, args = CodePayload(tmp_path / "proof").__reduce__()
    function(*args).close()  # type: ignore[operator]
    assert (tmp_path / "proof").exists()
    path = save_code_carrying(tmp_path / "evil.pth", marker, legacy=legacy)
    with pytest.raises(CheckpointError, match="refused to unpickle") as info:
        load_torch_checkpoint(path, notify=lambda _: None)
    assert str(path) in str(info.value) and "Nothing in it was executed" in str(info.value)
    assert not marker.exists()


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "consolidated.pth"
    torch.save(_state(), path)
    truncate(path)
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        load_torch_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([torch.zeros(1)], "expected a dict of tensors, found a list"),
        ({"a": torch.zeros(1), "step": 3}, r"not tensors: \['step'\]"),
        ({"model": {"a": torch.zeros(1)}}, r"not tensors: \['model'\]"),
    ],
    ids=["list", "int", "nested"],
)
def test_unexpected_content(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "x.pth"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=message):
        load_torch_checkpoint(path)


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot open"):
        load_torch_checkpoint(tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match=str(garbage)):
        load_torch_checkpoint(garbage, notify=lambda _: None)


@pytest.mark.parametrize(
    "damage",
    [lambda b: b[:-10], lambda b: b + b"xx", lambda b: b[:5], lambda b: b"\xff" * 8 + b[8:]],
    ids=["truncated", "trailing-bytes", "no-length", "huge-header"],
)
def test_damaged_safetensors_refused_naming_the_file(tmp_path: Path, damage: object) -> None:
    """``safe_open`` validates header length, offsets and tiling; the error names the file."""
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.ones(64, dtype=torch.float16), "n": torch.ones(3)}, path)
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(CheckpointError, match=f"{path}: not a readable safetensors file"):
        open_checkpoint(path)


def _write_sharded(folder: Path, fmt: str) -> dict[str, torch.Tensor]:
    state = _state(4)
    names = sorted(state)
    weight_map: dict[str, str] = {}
    for i, part in enumerate((names[:2], names[2:]), start=1):
        shard = {n: state[n] for n in part}
        if fmt == "bin":
            file_name = f"pytorch_model-{i:05d}-of-00002.bin"
            torch.save(shard, folder / file_name)
        else:
            file_name = f"model-{i:05d}-of-00002.safetensors"
            save_file(shard, folder / file_name, metadata={"format": "pt"})
        weight_map |= dict.fromkeys(part, file_name)
    index = "pytorch_model.bin.index.json" if fmt == "bin" else "model.safetensors.index.json"
    (folder / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return state


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_sharded_folder(tmp_path: Path, fmt: str) -> None:
    state = _write_sharded(tmp_path, fmt)
    with open_hf_shards(tmp_path) as checkpoint:
        assert checkpoint.names == sorted(state)
        assert len(checkpoint.files) == 2
        for name, tensor in state.items():
            assert checkpoint.spec(name) == TensorSpec.of(tensor)
            assert torch.equal(checkpoint.get(name), tensor)
        assert checkpoint.source_of("layers.3.w").name.endswith(f"00002-of-00002.{fmt}")


@pytest.mark.parametrize("file_name", ["pytorch_model.bin", "model.safetensors"])
def test_single_file_folder(tmp_path: Path, file_name: str) -> None:
    state = _state(2)
    if file_name.endswith(".bin"):
        torch.save(state, tmp_path / file_name)
    else:
        save_file(state, tmp_path / file_name)
    checkpoint = open_hf_shards(tmp_path)
    assert checkpoint.names == sorted(state)
    assert torch.equal(checkpoint.get("layers.1.w"), state["layers.1.w"])
    assert open_checkpoint(tmp_path / file_name).names == sorted(state)


def _edit_index(folder: Path, edit: dict[str, str | None]) -> None:
    index = folder / "pytorch_model.bin.index.json"
    data = json.loads(index.read_text())
    for name, shard in edit.items():
        if shard is None:
            del data["weight_map"][name]
        else:
            data["weight_map"][name] = shard
    index.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"layers.0.w": "../outside.bin"}, "resolves outside"),
        ({"layers.0.w": "/etc/passwd"}, "must be a relative path"),
        ({"layers.0.w": "pytorch_model-00009-of-00002.bin"}, "shard .* is missing"),
        ({"layers.9.w": "pytorch_model-00001-of-00002.bin"}, r"lacks: \['layers.9.w'\]"),
        ({"layers.0.w": None}, r"does not assign to it: \['layers.0.w'\]"),
    ],
    ids=["escape", "absolute", "missing-shard", "missing-tensor", "unlisted-tensor"],
)
def test_bad_index(tmp_path: Path, edit: dict[str, str | None], message: str) -> None:
    _write_sharded(tmp_path, "bin")
    _edit_index(tmp_path, edit)
    with pytest.raises(CheckpointError, match=message):
        open_hf_shards(tmp_path)


def test_index_without_weight_map_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        open_hf_shards(tmp_path)
    (tmp_path / "pytorch_model.bin.index.json").write_text('{"metadata": {}}')
    with pytest.raises(CheckpointError, match="no 'weight_map'"):
        open_hf_shards(tmp_path)


@pytest.mark.parametrize("same_entry", [True, False], ids=["same-entry", "other-bytes"])
def test_a_header_naming_a_tensor_twice_is_refused(tmp_path: Path, same_entry: bool) -> None:
    """Issue 18 (8): the safetensors library keeps the last of two entries of one name silently
    (same_entry) or fails on offsets; either way one error naming the file and the key."""
    path = tmp_path / "model.safetensors"
    save_file({"a": torch.ones(2, 2).half(), "b": torch.zeros(2, 2).half()}, path)
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + length].decode()
    if same_entry:
        entry = header[header.index('"a"') : header.index(',"b"')]
        header = header.replace(entry, entry + "," + entry, 1).rstrip()
        header += " " * (-len(header) % 8)
    else:
        header = header.replace('"b"', '"a"')
    path.write_bytes(len(header).to_bytes(8, "little") + header.encode() + data[8 + length :])
    with pytest.raises(CheckpointError, match=rf"{path}: .*header has the key 'a' twice"):
        open_checkpoint(path)
