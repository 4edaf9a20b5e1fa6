"""A header-first, streaming safetensors writer (REFERENCE §4); reading is ``safe_open``'s.

Why not ``safetensors.torch.save_file``: it needs every tensor in memory at once (a 27 GB fp32
checkpoint converted to fp16 would need the whole 13 GB result resident) and its metadata order
is not stable (a Rust ``HashMap``), so its hash is not reproducible with several metadata keys.

Contract of :func:`stage_safetensors`:

- the header is built from names, dtypes and shapes alone, before any tensor is produced; its
  bytes are those of the reference writer: tensors ordered by the reference's dtype rank
  (descending; by size, ties in the library's enum order) then by name, compact JSON with
  ``__metadata__`` (``header_metadata``) first (keys sorted here), right-padded with spaces to
  a multiple of 8;
- tensors are then requested one at a time from ``produce(name)``, checked against their spec
  (dtype and shape, a mismatch names the tensor), and their bytes are written without copying
  the tensor again; the SHA256 is computed on the bytes as they go out (no second read pass),
  in parallel with the write; a tensor's bytes are fully written before the next ``produce``
  call, so a producer may reuse one output buffer;
- after each tensor the kernel is asked to start writing it back (``POSIX_FADV_DONTNEED``,
  which also drops the written pages from the page cache once clean), so disk writes overlap
  the conversion instead of piling up in the final fsync;
- ``order`` lets the producer go in another order than the file's (the conversion goes in
  the order the forward pass reads, to trace the source in the same pass): each tensor is then
  written at its offset (``pwrite``) and a thread hashes the longest written prefix as it
  grows, reading it back from the page cache, so the SHA256 still costs no pass over the disk;
- the file is complete and fsynced at a temporary sibling of its destination, which the caller
  publishes (``ArtifactStaging.adopt``); on any failure the temporary file is removed and the
  error names the file and the tensor being written.

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
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import torch
from pydantic import BaseModel, ConfigDict, field_validator

from wmtp_assets.files.atomic import tmp_path_for
from wmtp_assets.files.hashing import CHUNK

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
    specs: Mapping[str, TensorSpec], header_metadata: Mapping[str, str] | None = None
) -> bytes:
    """The JSON header, padded with spaces to a multiple of 8 (without the length prefix)."""
    if "__metadata__" in specs:
        raise ValueError("'__metadata__' is reserved and cannot name a tensor")
    header: dict[str, Any] = {}
    if header_metadata is not None:
        bad = {
            k: v
            for k, v in header_metadata.items()
            if not isinstance(k, str) or not isinstance(v, str)
        }
        if bad:
            raise ValueError(f"safetensors metadata must map str to str; offending items: {bad}")
        header["__metadata__"] = dict(sorted(header_metadata.items()))
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
    return flat.view(torch.uint8).numpy().data


def _produced(
    produce: Callable[[str], torch.Tensor], name: str, spec: TensorSpec, label: Path
) -> torch.Tensor:
    """``produce(name)``, refused unless it has the dtype and shape the header declares."""
    tensor = produce(name)
    if tensor.dtype != spec.dtype or tuple(tensor.shape) != spec.shape:
        raise TensorSpecMismatchError(
            f"{label}: tensor {name!r} was produced as {tensor.dtype} "
            f"{tuple(tensor.shape)}, but the header declares {spec.dtype} {spec.shape}"
        )
    return tensor


def _stream(
    fh: BinaryIO,
    label: Path,
    specs: Mapping[str, TensorSpec],
    produce: Callable[[str], torch.Tensor],
    header_metadata: Mapping[str, str] | None,
    on_written: Callable[[str, int], None] | None,
) -> tuple[str, int]:
    """Write header then tensors into ``fh``; return (SHA256, bytes written)."""
    header = build_header(specs, header_metadata)
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
            tensor = _produced(produce, name, specs[name], label)
            emit(_tensor_bytes(tensor), f"tensor {name!r}", pool)
            del tensor
            if on_written is not None:
                on_written(name, written)
    return digest.hexdigest(), written


class _PrefixHasher:
    """SHA256 of a file written out of order: a thread hashes the longest written prefix as it
    grows, reading the bytes back with ``preadv`` (page cache: they were just written)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._digest = hashlib.sha256()
        self._ready: dict[int, int] = {}
        self._frontier = 0
        self._closed = False
        self._failure: OSError | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="safetensors-sha256", daemon=True)
        self._thread.start()

    def written(self, start: int, end: int) -> None:
        with self._cond:
            self._ready[start] = end
            self._cond.notify()

    def _run(self) -> None:
        view = memoryview(bytearray(CHUNK))
        while True:
            with self._cond:
                while self._frontier not in self._ready and not self._closed:
                    self._cond.wait()
                if self._frontier not in self._ready:
                    return
                pos, end = self._frontier, self._ready.pop(self._frontier)
            try:
                while pos < end:
                    n = os.preadv(self._fd, [view[: min(CHUNK, end - pos)]], pos)
                    if n <= 0:
                        raise OSError(0, f"read back {n} bytes at offset {pos}")
                    self._digest.update(view[:n])
                    pos += n
            except OSError as exc:
                self._failure = exc
                return
            with self._cond:
                self._frontier = end

    def hexdigest(self, size: int) -> str:
        """The SHA256 once bytes ``[0, size)`` are written and hashed."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        if self._failure is not None:
            raise self._failure
        if self._frontier != size:
            raise OSError(0, f"only the first {self._frontier} of {size} bytes were written")
        return self._digest.hexdigest()

    def abandon(self) -> None:
        with self._cond:
            self._closed = True
            self._ready.clear()
            self._cond.notify()
        self._thread.join()


def _stream_at_offsets(
    fh: BinaryIO,
    label: Path,
    specs: Mapping[str, TensorSpec],
    produce: Callable[[str], torch.Tensor],
    header_metadata: Mapping[str, str] | None,
    on_written: Callable[[str, int], None] | None,
    order: Sequence[str],
) -> tuple[str, int]:
    """Write the header, then ``produce`` tensors in ``order``, each at its offset; return
    (SHA256, size)."""
    if sorted(order) != sorted(specs):
        raise ValueError(f"{label}: the write order must name every tensor of the header once")
    header = build_header(specs, header_metadata)
    offsets = json.loads(header)
    data_start = 8 + len(header)
    size = data_start + sum(spec.nbytes for spec in specs.values())
    fd = fh.fileno()
    hasher = _PrefixHasher(fd)
    kick_writeback = getattr(os, "posix_fadvise", None)
    written = 0

    def put(data: bytes | memoryview, at: int, what: str) -> None:
        nonlocal written
        try:
            done = 0
            while done < len(data):
                done += os.pwrite(fd, data[done:], at + done)
            if kick_writeback is not None and len(data):
                # starts writeback of the dirty pages; it cannot drop them before they are
                # clean, so the hasher still reads them from the page cache
                kick_writeback(fd, at, len(data), os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            raise SafetensorsWriteError(
                exc.errno, f"{label}: writing {what} failed after {written} bytes: {exc.strerror}"
            ) from exc
        written += len(data)
        if len(data):  # an empty tensor shares its offset with the next one
            hasher.written(at, at + len(data))

    try:
        put(struct.pack("<Q", len(header)) + header, 0, "the header")
        for name in order:
            tensor = _produced(produce, name, specs[name], label)
            begin = offsets[name]["data_offsets"][0]
            put(_tensor_bytes(tensor), data_start + begin, f"tensor {name!r}")
            del tensor
            if on_written is not None:
                on_written(name, written)
        try:
            return hasher.hexdigest(size), size
        except OSError as exc:
            raise SafetensorsWriteError(
                exc.errno, f"{label}: hashing the written bytes failed: {exc.strerror or exc}"
            ) from exc
    finally:
        hasher.abandon()


def stage_safetensors(
    dest: Path,
    specs: Mapping[str, TensorSpec],
    produce: Callable[[str], torch.Tensor],
    header_metadata: Mapping[str, str] | None = None,
    on_written: Callable[[str, int], None] | None = None,
    order: Sequence[str] | None = None,
) -> WriteResult:
    """Write a complete, fsynced file at a temporary sibling of ``dest`` and return it.

    For callers that publish the file themselves (``ArtifactStaging`` renames it with the
    rest of the artifact): the result's ``path`` is the temporary file, which never looks like the
    artifact. On any failure the temporary file is removed before the error propagates.
    ``on_written(name, bytes_so_far)`` runs after each tensor's bytes are written; ``order``
    (every name once) is the order ``produce`` is called in (default: the file's).
    """
    if sys.byteorder != "little":
        raise RuntimeError("the streaming safetensors writer supports little-endian hosts only")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(dest)
    try:
        with open(tmp, "x+b") as fh:  # read too: an out-of-order write is hashed back
            if order is None or list(order) == tensor_order(specs):
                sha256, size = _stream(fh, tmp, specs, produce, header_metadata, on_written)
            else:
                sha256, size = _stream_at_offsets(
                    fh, tmp, specs, produce, header_metadata, on_written, order
                )
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
