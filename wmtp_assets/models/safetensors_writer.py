"""A header-first, streaming safetensors writer and a header-only reader (REFERENCE §4).

Why not ``safetensors.torch.save_file``: it needs every tensor in memory at once (a 27 GB fp32
checkpoint converted to fp16 would need the whole 13 GB result resident) and its metadata order
is not stable (a Rust ``HashMap``), so its hash is not reproducible with several metadata keys.

Contract of :func:`write_safetensors` / :func:`stage_safetensors`:

- the header is built from names, dtypes and shapes alone, before any tensor is produced; its
  bytes are those of the reference writer: tensors ordered by the reference's dtype rank
  (descending; by size, ties in the library's enum order) then by name, compact JSON with
  ``__metadata__`` first (keys sorted here), right-padded with spaces to a multiple of 8;
- tensors are then requested one at a time from ``produce(name)``, checked against their spec
  (dtype and shape, a mismatch names the tensor), and their bytes are written without copying
  the tensor again; the SHA256 is computed on the bytes as they go out (no second read pass),
  in parallel with the write; a tensor's bytes are fully written before the next ``produce``
  call, so a producer may reuse one output buffer;
- after each tensor the kernel is asked to start writing it back (``POSIX_FADV_DONTNEED``,
  which also drops the written pages from the page cache once clean), so disk writes overlap
  the conversion instead of piling up in the final fsync;
- the file appears under its final name only when complete and fsynced; on any failure the
  temporary file is removed and the error names the file and the tensor being written.

For the same tensors and metadata (at most one metadata key, or keys already in sorted order
in the reference's output) the bytes equal ``save_file``'s; the tests prove it for every dtype.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import torch
from pydantic import BaseModel, ConfigDict, field_validator

from wmtp_assets.files.atomic import atomic_open, tmp_path_for

HEADER_LIMIT = 100 * 1000 * 1000
"""The reference library refuses headers larger than this (bytes)."""

ALIGNMENT = 8

# torch dtype -> (safetensors name, rank). The rank is the position in the reference library's
# ``Dtype`` enum, which orders dtypes by size; the writer sorts tensors by descending rank.
_DTYPES: dict[torch.dtype, tuple[str, int]] = {
    torch.bool: ("BOOL", 0),
    torch.uint8: ("U8", 1),
    torch.int8: ("I8", 2),
    torch.float8_e5m2: ("F8_E5M2", 3),
    torch.float8_e4m3fn: ("F8_E4M3", 4),
    torch.float8_e4m3fnuz: ("F8_E4M3FNUZ", 5),
    torch.float8_e5m2fnuz: ("F8_E5M2FNUZ", 6),
    torch.int16: ("I16", 7),
    torch.uint16: ("U16", 8),
    torch.float16: ("F16", 9),
    torch.bfloat16: ("BF16", 10),
    torch.int32: ("I32", 11),
    torch.uint32: ("U32", 12),
    torch.float32: ("F32", 13),
    torch.complex64: ("C64", 14),
    torch.float64: ("F64", 15),
    torch.int64: ("I64", 16),
    torch.uint64: ("U64", 17),
}
_BY_NAME: dict[str, torch.dtype] = {name: dtype for dtype, (name, _) in _DTYPES.items()}


class SafetensorsHeaderError(ValueError):
    """A safetensors file whose header is malformed, truncated or inconsistent with its size."""


class TensorSpecMismatchError(ValueError):
    """A produced tensor whose dtype or shape differs from the spec the header was built from."""


class SafetensorsWriteError(OSError):
    """Writing the file failed (disk full, file size limit, I/O error); names file and tensor."""


def safetensors_dtype(dtype: torch.dtype) -> str:
    """The safetensors name of a torch dtype (``torch.float16`` -> ``"F16"``)."""
    try:
        return _DTYPES[dtype][0]
    except KeyError:
        raise ValueError(f"dtype {dtype} cannot be stored in safetensors") from None


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a safetensors dtype name (``"BF16"`` -> ``torch.bfloat16``)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown safetensors dtype {name!r}; known: {sorted(_BY_NAME)}") from None


class TensorSpec(BaseModel):
    """What the header needs to know about a tensor before its bytes exist."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    dtype: torch.dtype
    shape: tuple[int, ...]

    @field_validator("dtype")
    @classmethod
    def _storable(cls, value: torch.dtype) -> torch.dtype:
        safetensors_dtype(value)
        return value

    @field_validator("shape")
    @classmethod
    def _non_negative(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(dim < 0 for dim in value):
            raise ValueError(f"negative dimension in shape {value}")
        return value

    @classmethod
    def of(cls, tensor: torch.Tensor) -> TensorSpec:
        return cls(dtype=tensor.dtype, shape=tuple(tensor.shape))

    @property
    def nbytes(self) -> int:
        return torch.Size(self.shape).numel() * self.dtype.itemsize


class WriteResult(BaseModel):
    """A written (or staged) safetensors file: where, its SHA256 and size, how many tensors."""

    path: Path
    sha256: str
    size: int
    n_tensors: int


def tensor_order(specs: Mapping[str, TensorSpec]) -> list[str]:
    """The reference writer's order: dtype rank descending, then name."""
    return sorted(specs, key=lambda name: (-_DTYPES[specs[name].dtype][1], name))


def build_header(
    specs: Mapping[str, TensorSpec], metadata: Mapping[str, str] | None = None
) -> bytes:
    """The JSON header, padded with spaces to a multiple of 8 (without the length prefix)."""
    if "__metadata__" in specs:
        raise ValueError("'__metadata__' is reserved and cannot name a tensor")
    header: dict[str, Any] = {}
    if metadata is not None:
        bad = {
            k: v for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)
        }
        if bad:
            raise ValueError(f"safetensors metadata must map str to str; offending items: {bad}")
        header["__metadata__"] = dict(sorted(metadata.items()))
    offset = 0
    for name in tensor_order(specs):
        spec = specs[name]
        end = offset + spec.nbytes
        header[name] = {
            "dtype": safetensors_dtype(spec.dtype),
            "shape": list(spec.shape),
            "data_offsets": [offset, end],
        }
        offset = end
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % ALIGNMENT)
    if len(raw) > HEADER_LIMIT:
        raise ValueError(f"safetensors header of {len(raw)} bytes exceeds {HEADER_LIMIT}")
    return raw


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes in C order, little-endian, without copying a contiguous CPU tensor."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def _stream(
    fh: BinaryIO,
    label: Path,
    specs: Mapping[str, TensorSpec],
    produce: Callable[[str], torch.Tensor],
    metadata: Mapping[str, str] | None,
    on_written: Callable[[str, int], None] | None,
) -> tuple[str, int]:
    """Write header then tensors into ``fh``; return (SHA256, bytes written)."""
    if sys.byteorder != "little":
        raise RuntimeError("the streaming safetensors writer supports little-endian hosts only")
    header = build_header(specs, metadata)
    digest = hashlib.sha256()
    written = 0
    kick_writeback = getattr(os, "posix_fadvise", None)

    def emit(data: bytes | memoryview, name: str, pool: ThreadPoolExecutor) -> None:
        # Hash here while a worker thread writes the same bytes (both release the GIL), then
        # ask the kernel to start writing them back now rather than all at the final fsync.
        nonlocal written
        pending = pool.submit(fh.write, data)
        digest.update(data)
        try:
            pending.result()
            if kick_writeback is not None and len(data):
                fh.flush()
                kick_writeback(fh.fileno(), written, len(data), os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            raise SafetensorsWriteError(
                exc.errno, f"{label}: writing {name} failed after {written} bytes: {exc.strerror}"
            ) from exc
        written += len(data)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="safetensors-write") as pool:
        emit(struct.pack("<Q", len(header)) + header, "the header", pool)
        for name in tensor_order(specs):
            tensor = produce(name)
            spec = specs[name]
            if tensor.dtype != spec.dtype or tuple(tensor.shape) != spec.shape:
                raise TensorSpecMismatchError(
                    f"{label}: tensor {name!r} was produced as {tensor.dtype} "
                    f"{tuple(tensor.shape)}, but the header declares {spec.dtype} {spec.shape}"
                )
            emit(_tensor_bytes(tensor), f"tensor {name!r}", pool)
            del tensor
            if on_written is not None:
                on_written(name, written)
    return digest.hexdigest(), written


def stage_safetensors(
    dest: Path,
    specs: Mapping[str, TensorSpec],
    produce: Callable[[str], torch.Tensor],
    metadata: Mapping[str, str] | None = None,
    on_written: Callable[[str, int], None] | None = None,
) -> WriteResult:
    """Write a complete, fsynced file at a temporary sibling of ``dest`` and return it.

    For callers that publish the file themselves (``publish_weights`` renames it and writes
    ``SHA256SUMS``): the result's ``path`` is the temporary file, which never looks like the
    artifact. On any failure the temporary file is removed before the error propagates.
    ``on_written(name, bytes_so_far)`` runs after each tensor's bytes are written.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(dest)
    try:
        with open(tmp, "xb") as fh:
            sha256, size = _stream(fh, tmp, specs, produce, metadata, on_written)
            fh.flush()
            try:
                os.fsync(fh.fileno())
            except OSError as exc:
                raise SafetensorsWriteError(
                    exc.errno, f"{tmp}: fsync after writing all tensors failed: {exc.strerror}"
                ) from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return WriteResult(path=tmp, sha256=sha256, size=size, n_tensors=len(specs))


def write_safetensors(
    dest: Path,
    specs: Mapping[str, TensorSpec],
    produce: Callable[[str], torch.Tensor],
    metadata: Mapping[str, str] | None = None,
    on_written: Callable[[str, int], None] | None = None,
) -> WriteResult:
    """Write ``dest`` atomically (see the module contract); readers never see a partial file."""
    with atomic_open(dest) as fh:
        sha256, size = _stream(fh, dest, specs, produce, metadata, on_written)
    return WriteResult(path=dest, sha256=sha256, size=size, n_tensors=len(specs))


def read_safetensors_header(path: Path | str) -> tuple[dict[str, Any], int]:
    """Parse only the header of ``path``; return it and the offset where tensor data starts.

    Reads 8 + N bytes whatever the file size. Checks what a loader relies on: the length prefix
    fits the file and the 100 MB limit, the JSON is an object, every entry has a known dtype, a
    shape and offsets matching its size, and the offsets tile the data buffer up to the end of
    the file (a truncated file fails here). Errors name the file.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise SafetensorsHeaderError(
                f"{path}: {size} bytes, too short for the 8-byte header length"
            )
        (length,) = struct.unpack("<Q", prefix)
        if length > HEADER_LIMIT:
            raise SafetensorsHeaderError(
                f"{path}: header length {length} exceeds the {HEADER_LIMIT}-byte limit "
                "(not a safetensors file?)"
            )
        if 8 + length > size:
            raise SafetensorsHeaderError(
                f"{path}: header length {length} runs past the end of the {size}-byte file "
                "(truncated?)"
            )
        raw = fh.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsHeaderError(f"{path}: header is not valid UTF-8 JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise SafetensorsHeaderError(f"{path}: header is {type(header).__name__}, not an object")
    data_start = 8 + length
    _check_entries(path, header, size - data_start)
    return header, data_start


def stored_dtype(path: Path | str) -> str:
    """The one torch dtype name (``"float16"``) all tensors of ``path`` have, from its header."""
    header, _ = read_safetensors_header(path)
    names = {entry["dtype"] for key, entry in header.items() if key != "__metadata__"}
    if len(names) != 1:
        raise SafetensorsHeaderError(f"{path}: expected one dtype for all tensors, found {names}")
    return str(torch_dtype(names.pop())).removeprefix("torch.")


def _check_entries(path: Path, header: dict[str, Any], buffer_size: int) -> None:
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise SafetensorsHeaderError(f"{path}: __metadata__ must map strings to strings")
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = torch_dtype(entry["dtype"])
            shape = [int(d) for d in entry["shape"]]
            begin, end = (int(x) for x in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SafetensorsHeaderError(f"{path}: tensor {name!r} has a bad entry: {exc}") from exc
        expected = torch.Size(shape).numel() * dtype.itemsize
        if min(shape, default=0) < 0 or end - begin != expected:
            raise SafetensorsHeaderError(
                f"{path}: tensor {name!r} ({entry['dtype']} {shape}) needs {expected} bytes, "
                f"its offsets [{begin}, {end}) hold {end - begin}"
            )
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise SafetensorsHeaderError(
                f"{path}: tensor {name!r} starts at {begin}, expected {position} "
                "(offsets must tile the data buffer without gaps or overlaps)"
            )
        position = end
    if position != buffer_size:
        raise SafetensorsHeaderError(
            f"{path}: header describes {position} bytes of tensor data, the file holds "
            f"{buffer_size} (truncated or trailing bytes)"
        )
