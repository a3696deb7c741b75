"""Safetensors shards read and written tensor by tensor.

A shard is read from its bounded, checked header (:func:`advparams.files.safetensors_header`:
every tensor's dtype, shape and byte range inside the file) and then one tensor at a time:
a tensor that is only hashed through a memory map of just its bytes, unmapped as soon as it
is used, and a tensor that changes read straight into its own new memory, so the process
holds at most the tensors it is working on, whatever the shard's size.

A shard is written in the source's exact layout: the source's header bytes (the same
names, dtypes, shapes, offsets and metadata: a transform never changes a tensor's dtype or
shape) and then each tensor's bytes at its offset, in file order. A tensor that does not
change is copied by the kernel (``copy_file_range``) without passing through the process.
The shard is written under a hidden name in the output's staging folder, flushed, and only
then renamed to its own name, so no shard is ever seen half-written under its name.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from advparams.errors import CheckpointError
from advparams.files import LIMITS, safetensors_header
from advparams.files.reading import open_regular
from advparams.files.tensors import MAX_SAFETENSORS_HEADER, TensorSpec

__all__ = ["DTYPES", "Shard", "ShardWriter", "read_shard"]

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}  # fmt: skip
"""The safetensors dtypes a shard's tensors may have when they are read as tensors."""


@dataclass(frozen=True)
class Shard:
    """One safetensors file of a model folder, from its header.

    Attributes:
        path: the file.
        head: its first bytes: the length word and the JSON header (copied verbatim into
            a shard written in its layout).
        size: the file's size in bytes.
        tensors: each tensor's spec (dtype, shape, byte range), in file order.
        metadata: the header's string metadata.
    """

    path: Path
    head: bytes
    size: int
    tensors: dict[str, TensorSpec]
    metadata: dict[str, str]

    @property
    def start(self) -> int:
        """Where the tensors' bytes begin (their offsets count from here)."""
        return len(self.head)

    def bytes_of(self, name: str) -> int:
        """Bytes of tensor ``name``."""
        a, b = self.tensors[name].offsets
        return b - a

    @contextmanager
    def mapped(self, name: str) -> Iterator[memoryview]:
        """The bytes of tensor ``name``, memory-mapped read-only for the ``with`` block."""
        spec = self.tensors[name]
        a, b = self.start + spec.offsets[0], self.start + spec.offsets[1]
        if b == a:
            yield memoryview(b"")
            return
        base = a - a % mmap.ALLOCATIONGRANULARITY
        with open(self.path, "rb") as f, mmap.mmap(f.fileno(), b - base, access=mmap.ACCESS_READ, offset=base) as m:
            view = memoryview(m)[a - base : b - base]
            try:
                yield view
            finally:
                view.release()

    def read(self, name: str) -> torch.Tensor:
        """A writable copy of tensor ``name`` (flat, in its dtype), read straight into its
        own memory (faster than copying it out of a memory map, which faults page by page)."""
        spec = self.tensors[name]
        if spec.dtype not in DTYPES:
            raise CheckpointError(f"{self.path}: tensor {name[:80]!r} is {spec.dtype}, which is not read as a tensor")
        out = torch.empty(spec.numel, dtype=DTYPES[spec.dtype])
        if spec.numel:
            view = out.view(torch.uint8).numpy().data.cast("B")
            start = self.start + spec.offsets[0]
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                got = 0
                while got < len(view):
                    done = os.preadv(fd, [view[got : got + (1 << 30)]], start + got)
                    if done <= 0:
                        raise CheckpointError(f"{self.path} ended early (tensor {name[:80]!r})")
                    got += done
            finally:
                os.close(fd)
        return out


def read_shard(path: str | os.PathLike[str]) -> Shard:
    """The header of the safetensors file ``path`` (a regular file within the weights'
    size limit), checked: every tensor's byte range inside the file and no two
    overlapping.

    Raises:
        CheckpointError: not a regular file, over the limit, or a malformed header.
    """
    p = Path(path)
    what = f"model weights {p}"
    fd, size = open_regular(p, what="model weights", limit=LIMITS["checkpoint-weights"], error=CheckpointError)
    try:
        first = os.pread(fd, 8, 0)
        if len(first) < 8:
            raise CheckpointError(f"{what} is truncated or not a safetensors file")
        (n,) = struct.unpack("<Q", first)
        if n > MAX_SAFETENSORS_HEADER or 8 + n > size:
            raise CheckpointError(f"{what} is truncated or not a safetensors file")
        head = first + os.pread(fd, n, 8)
    finally:
        os.close(fd)
    if len(head) != 8 + n:
        raise CheckpointError(f"{what} is truncated")
    meta, specs = safetensors_header(head, what=what, error=CheckpointError, body=size - 8 - n, metadata=False)
    ordered = dict(sorted(specs.items(), key=lambda kv: kv[1].offsets))
    end = 0
    for name, spec in ordered.items():
        if spec.offsets[0] < end:
            raise CheckpointError(f"{what} is corrupt (tensor {name[:40]!r} overlaps another)")
        end = spec.offsets[1]
    return Shard(p, head, size, ordered, meta)


class ShardWriter:
    """Writes a shard in ``source``'s layout at ``dest`` (inside a staging folder): call
    :meth:`write` or :meth:`copy` once for every tensor, in any order and from any thread
    (each writes at its own offset), then :meth:`close`. The bytes go to a hidden sibling
    that is renamed to ``dest`` only when complete and flushed; :meth:`abort` removes it."""

    def __init__(self, source: Shard, dest: Path) -> None:
        self.source, self.dest = source, dest
        self.tmp = dest.parent / f".{dest.name}.partial"
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.src = os.open(source.path, os.O_RDONLY | os.O_CLOEXEC)
        _pwrite_all(self.fd, memoryview(source.head), 0)

    def _copy_range(self, start: int, end: int) -> None:
        """Copies the source's bytes ``[start, end)`` (file positions) to the same place."""
        offset = start
        while offset < end:
            try:
                done = os.copy_file_range(self.src, self.fd, end - offset, offset, offset)
            except OSError:
                done = 0
            if done <= 0:  # not supported here: copy through the process
                data = os.pread(self.src, min(end - offset, 1 << 24), offset)
                if not data:
                    raise CheckpointError(f"{self.source.path} ended early")
                _pwrite_all(self.fd, memoryview(data), offset)
                done = len(data)
            offset += done

    def _range(self, name: str) -> tuple[int, int]:
        spec = self.source.tensors[name]
        return self.source.start + spec.offsets[0], self.source.start + spec.offsets[1]

    def write(self, name: str, values: torch.Tensor) -> None:
        """Writes tensor ``name`` with ``values`` (its dtype and size, any shape)."""
        spec = self.source.tensors[name]
        flat = values.detach().to("cpu").contiguous().reshape(-1)
        if flat.numel() != spec.numel or DTYPES.get(spec.dtype) != flat.dtype:
            raise CheckpointError(f"internal error: {name} written as {flat.dtype} x {flat.numel()}")
        if flat.numel():
            _pwrite_all(self.fd, flat.view(torch.uint8).numpy().data, self._range(name)[0])

    def copy(self, name: str) -> None:
        """Copies tensor ``name`` unchanged from the source."""
        self._copy_range(*self._range(name))

    def close(self) -> None:
        """Copies the bytes between and after the tensors, flushes, and names the shard."""
        end = self.source.start
        for name in self.source.tensors:  # in file order
            a, b = self._range(name)
            if a > end:
                self._copy_range(end, a)
            end = max(end, b)
        if self.source.size > end:
            self._copy_range(end, self.source.size)
        os.ftruncate(self.fd, self.source.size)
        os.fsync(self.fd)
        os.close(self.fd)
        os.close(self.src)
        self.fd = self.src = -1
        os.rename(self.tmp, self.dest)

    def abort(self) -> None:
        """Closes and removes the unfinished shard."""
        for fd in (self.fd, self.src):
            if fd >= 0:
                os.close(fd)
        self.fd = self.src = -1
        self.tmp.unlink(missing_ok=True)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    """Writes all of ``data`` at ``offset`` (one call writes at most about 2 GB)."""
    data = data.cast("B")
    while data:
        done = os.pwrite(fd, data[: 1 << 30], offset)
        data, offset = data[done:], offset + done
