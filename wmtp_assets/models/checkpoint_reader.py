"""Reading upstream checkpoints safely and lazily: torch pickles, HF shard indexes, safetensors.

Contract:

- pickles are only ever unpickled with ``weights_only=True``: a file that carries code or
  arbitrary objects is refused, nothing in it runs;
- zip-format torch files are memory-mapped shared and read-only (``file_mapping``), so
  opening a 27 GB checkpoint costs its pickle, not its size, on a machine with less RAM than
  that; a tensor's bytes are read when it is used and :func:`release_pages` drops them from the
  resident set after use; a mapping the kernel refuses for memory says so and names the limit;
- every failure is one :class:`CheckpointError` naming the file (and the tensor when one is
  at fault), whether the file is truncated, corrupt, refused or of unexpected content.
"""

from __future__ import annotations

import json
import logging
import pickle
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from wmtp_assets.files.layout import UnsafePathError, safe_join
from wmtp_assets.models.file_mapping import (
    MappingRefusedError,
    file_range,
    load_shared_read_only,
    release_pages,
)
from wmtp_assets.models.safetensors_writer import TensorSpec, torch_dtype

log = logging.getLogger(__name__)

HF_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
HF_SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read as a flat ``{name: tensor}`` mapping."""


def load_torch_checkpoint(
    path: Path | str, notify: Callable[[str], None] | None = None
) -> dict[str, torch.Tensor]:
    """Load a torch checkpoint as ``{name: tensor}`` with ``weights_only=True``, memory-mapped.

    Old-format (non-zip) pickles cannot be mapped: they are loaded into memory, still with
    ``weights_only=True``, and ``notify`` (default: a log warning) is told so.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot open checkpoint ({exc.strerror})") from exc
    mmap = magic == _ZIP_MAGIC
    if not mmap:
        (notify or log.warning)(
            f"{path}: not a zip-format torch file, so it cannot be memory-mapped; loading it "
            "whole into memory (weights_only). Re-save it with torch.save to stream it."
        )
    try:
        state = load_shared_read_only(
            path, lambda: torch.load(path, mmap=mmap, weights_only=True, map_location="cpu")
        )
    except MappingRefusedError as exc:
        raise CheckpointError(str(exc)) from exc
    except pickle.UnpicklingError as exc:
        reason = str(exc)
        if "Weights only load failed" in reason:
            detail = next(
                (line for line in reason.splitlines() if "GLOBAL" in line or "Unsupported" in line),
                "it holds objects other than tensors and plain containers",
            )
            raise CheckpointError(
                f"{path}: refused to unpickle: weights_only loading allows tensors and plain "
                f"containers only, and this file carries more ({detail.strip()}). Nothing in it "
                "was executed."
            ) from exc
        raise CheckpointError(f"{path}: corrupt pickle ({reason[:300]})") from exc
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"{path}: truncated or corrupt checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300] if str(exc) else 'no detail'})"
        ) from exc
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found a {type(state).__name__}")
    bad = [str(k) for k, v in state.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(
            f"{path}: expected a flat dict of tensors; entries that are not tensors: {bad[:10]}"
        )
    return dict(state)


class LazyCheckpoint:
    """Name -> tensor over one or more checkpoint files, each opened once, bytes read on use.

    Torch files are loaded memory-mapped (their tensors cost nothing until touched);
    safetensors files are opened with ``safe_open`` (headers only). Every tensor name must
    occur in exactly one file.
    """

    def __init__(self, files: Mapping[Path, Any], where: Mapping[str, Path]) -> None:
        self._files = dict(files)
        self._where = dict(where)
        self.on_release: Callable[[Path, int, int], None] | None = None
        """Told (file, begin, end) of each released mapped tensor: who may drop its pages."""

    @property
    def names(self) -> list[str]:
        return sorted(self._where)

    @property
    def files(self) -> list[Path]:
        return list(self._files)

    def source_of(self, name: str) -> Path:
        return self._where[name]

    def spec(self, name: str) -> TensorSpec:
        """Dtype and shape without reading the tensor's bytes."""
        handle = self._files[self._where[name]]
        if isinstance(handle, dict):
            return TensorSpec.of(handle[name])
        view = handle.get_slice(name)
        return TensorSpec(dtype=torch_dtype(view.get_dtype()), shape=tuple(view.get_shape()))

    def get(self, name: str) -> torch.Tensor:
        path = self._where[name]
        handle = self._files[path]
        tensor: torch.Tensor
        if isinstance(handle, dict):
            tensor = handle[name]
            return tensor
        try:
            tensor = handle.get_tensor(name)
        except SafetensorError as exc:
            raise CheckpointError(f"{path}: cannot read tensor {name!r} ({exc})") from exc
        return tensor

    def release(self, tensor: torch.Tensor, name: str) -> None:
        """Drop ``tensor``'s mapped pages from RSS once it has been used (see release_pages)
        and tell ``on_release`` where they lie in the file."""
        source = self._where[name]
        span = file_range(tensor, source) if self.on_release is not None else None
        release_pages(tensor, source)
        if span is not None and self.on_release is not None:
            self.on_release(source, *span)

    def close(self) -> None:
        self._files.clear()
        self._where.clear()

    def __enter__(self) -> LazyCheckpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_MAX_HEADER = 100_000_000
"""The safetensors format's own bound on the JSON header (100 MB)."""


def _refuse_duplicate_names(path: Path) -> None:
    """A header naming a tensor twice: the ``safetensors`` library keeps the last entry
    silently, so which bytes a name means would depend on the reader. Refused, naming it."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for name, _ in items:
            if name in seen:
                raise CheckpointError(
                    f"{path}: the safetensors header has the key {name!r} twice; "
                    "expected each key once"
                )
            seen.add(name)
        return dict(items)

    try:
        with open(path, "rb") as fh:
            prefix = fh.read(8)
            length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 0 < length <= _MAX_HEADER:
                return  # safe_open names what is wrong with the length
            json.loads(fh.read(length), object_pairs_hook=pairs)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return  # safe_open says why it cannot read the file


def _open_file(path: Path, notify: Callable[[str], None] | None) -> Any:
    """A dict of (mapped) tensors for a torch file, a ``safe_open`` handle for safetensors
    (whose header names each tensor once)."""
    if path.suffix != ".safetensors":
        return load_torch_checkpoint(path, notify)
    _refuse_duplicate_names(path)
    try:
        return safe_open(path, framework="pt")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def _names_in(handle: Any) -> list[str]:
    return list(handle) if isinstance(handle, dict) else list(handle.keys())


def open_checkpoint(
    path: Path | str, notify: Callable[[str], None] | None = None
) -> LazyCheckpoint:
    """One torch (``.pth``/``.bin``/``.pt``) or ``.safetensors`` file as a lazy checkpoint."""
    path = Path(path)
    handle = _open_file(path, notify)
    return LazyCheckpoint({path: handle}, dict.fromkeys(_names_in(handle), path))


def _read_weight_map(index: Path) -> dict[str, str]:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{index}: not a readable JSON index ({exc})") from exc
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: no 'weight_map' object mapping tensor names to files")
    bad = {k: v for k, v in weight_map.items() if not isinstance(v, str)}
    if bad:
        raise CheckpointError(f"{index}: weight_map values must be file names: {bad}")
    return weight_map


def open_hf_shards(
    folder: Path | str,
    index_file: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> LazyCheckpoint:
    """A Hugging Face checkpoint folder (sharded with an index, or one weights file), lazily.

    ``index_file`` names the index or single weights file inside ``folder``; by default the
    first present of ``model.safetensors.index.json``, ``pytorch_model.bin.index.json``,
    ``model.safetensors``, ``pytorch_model.bin``. The index's weight_map is validated: every
    shard stays inside ``folder`` and exists, every named tensor is in its shard, and no shard
    holds tensors the index does not name. Each shard is opened once.
    """
    folder = Path(folder)
    if index_file is None:
        index_file = next(
            (n for n in (*HF_INDEX_FILES, *HF_SINGLE_FILES) if (folder / n).is_file()), None
        )
        if index_file is None:
            raise CheckpointError(
                f"{folder}: no checkpoint found (looked for {', '.join(HF_INDEX_FILES)}, "
                f"{', '.join(HF_SINGLE_FILES)})"
            )
    try:
        index = safe_join(folder, index_file)
    except UnsafePathError as exc:
        raise CheckpointError(str(exc)) from exc
    if not index.name.endswith(".index.json"):
        return open_checkpoint(index, notify)
    weight_map = _read_weight_map(index)
    shard_paths: dict[str, Path] = {}
    for shard in sorted(set(weight_map.values())):
        try:
            path = safe_join(folder, shard)
        except UnsafePathError as exc:
            raise CheckpointError(f"{index}: weight_map {exc}") from exc
        if not path.is_file():
            raise CheckpointError(f"{index}: shard {shard!r} is missing from {folder}")
        shard_paths[shard] = path
    files: dict[Path, Any] = {}
    where: dict[str, Path] = {}
    for shard, path in shard_paths.items():
        handle = _open_file(path, notify)
        files[path] = handle
        held = set(_names_in(handle))
        listed = {name for name, s in weight_map.items() if s == shard}
        if listed - held:
            raise CheckpointError(
                f"{path}: the index lists tensors this shard lacks: {sorted(listed - held)[:10]}"
            )
        if held - listed:
            raise CheckpointError(
                f"{path}: holds tensors the index {index.name} does not assign to it: "
                f"{sorted(held - listed)[:10]}"
            )
        where |= dict.fromkeys(held, path)
    return LazyCheckpoint(files, where)
