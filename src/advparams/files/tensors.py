"""Bounded reading of the toolkit's safetensors files (keys, watermark keys, trigger,
fingerprint and query files): the JSON header parsed and checked (every tensor's dtype,
shape and byte range) before any tensor is copied, then the format, version, the caller's
checks of the declared tensors, and the digest (:mod:`advparams.files.reading` has the
bounded file reads these start from)."""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from advparams.errors import AdvParamsError
from advparams.files.reading import MiB, _fail, parse_json, read_file

MAX_SAFETENSORS_HEADER = 16 * MiB
"""Largest safetensors JSON header accepted (keys and watermark keys)."""
MAX_TENSOR_DIMS = 8
"""Most dimensions of one tensor in a safetensors file."""

SAFETENSORS_DTYPES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
"""Bytes per value of each safetensors dtype a header may name (others are refused)."""


@dataclass(frozen=True)
class TensorSpec:
    """A tensor as a safetensors header declares it, before any of its bytes is read.

    Attributes:
        dtype: the safetensors dtype name (``"F32"``, ``"I64"``, ``"U8"``, ...).
        shape: its shape.
        offsets: its byte range, counted from the end of the header.
    """

    dtype: str
    shape: tuple[int, ...]
    offsets: tuple[int, int] = (0, 0)

    @property
    def numel(self) -> int:
        """Values it holds."""
        return math.prod(self.shape)


def _header(
    data: bytes, what: str, error: type[AdvParamsError], *, metadata: bool = True
) -> tuple[dict[str, Any], int]:
    if len(data) < 8:
        raise _fail(error, f"{what} is truncated or not a {what}")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_SAFETENSORS_HEADER or 8 + n > len(data):
        raise _fail(error, f"{what} is truncated or not a {what}")
    header = parse_json(data[8 : 8 + n], what=f"{what} (header)", error=error)
    if not isinstance(header, dict):
        raise _fail(error, f"{what} is corrupt (its header is not a JSON object)")
    meta = header.get("__metadata__", None if metadata else {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _fail(error, f"not an advparams {what} (no metadata)" if metadata else f"{what} has bad metadata")
    return header, n


def safetensors_metadata(data: bytes, *, what: str, error: type[AdvParamsError] = AdvParamsError) -> dict[str, str]:
    """The string metadata of a safetensors file held in ``data``, read with the bounds
    above (the header's length, depth and duplicate keys), before any tensor is parsed."""
    header, _ = _header(data, what, error)
    return dict(header["__metadata__"])


def safetensors_header(
    data: bytes,
    *,
    what: str,
    error: type[AdvParamsError] = AdvParamsError,
    body: int | None = None,
    metadata: bool = True,
) -> tuple[dict[str, str], dict[str, TensorSpec]]:
    """``(metadata, tensors)`` of a safetensors file held in ``data``, from its header only:
    every tensor's dtype (one of :data:`SAFETENSORS_DTYPES`), shape (at most
    :data:`MAX_TENSOR_DIMS` non-negative sides) and byte range (inside the file, exactly
    its values' size) checked, so that a caller can refuse a count or a shape before a
    byte of the tensors is copied.

    ``data`` may hold only the start of a large file (its length word and header): then
    ``body`` gives the bytes after the header. Without ``metadata`` a file with no
    ``__metadata__`` is read too (a model's weights; the toolkit's own files always have it).
    """
    header, n = _header(data, what, error, metadata=metadata)
    if body is None:
        body = len(data) - 8 - n
    specs: dict[str, TensorSpec] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        bad = f"{what} is corrupt (tensor {name[:40]!r} is badly described)"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _fail(error, bad)
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in SAFETENSORS_DTYPES:
            raise _fail(error, f"{what} is corrupt (tensor {name[:40]!r} has an unsupported dtype {str(dtype)[:20]!r})")
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_TENSOR_DIMS
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise _fail(error, bad)
        if offsets[1] > body:
            raise _fail(error, f"{what} is truncated or corrupt (tensor {name[:40]!r} ends past the file's end)")
        spec = TensorSpec(dtype, tuple(shape), (offsets[0], offsets[1]))
        if spec.numel * SAFETENSORS_DTYPES[dtype] != offsets[1] - offsets[0]:
            raise _fail(error, f"{what} is truncated or corrupt (tensor {name[:40]!r} does not fill its bytes)")
        specs[name] = spec
    meta = header.get("__metadata__") or {}
    return dict(meta), specs


def open_safetensors(
    data: bytes,
    *,
    what: str,
    file_format: str,
    version: str | tuple[str, ...],
    digest: Callable[[dict[str, str], dict[str, Any]], str],
    error: type[AdvParamsError] = AdvParamsError,
    check: Callable[[dict[str, str], dict[str, TensorSpec]], None] | None = None,
) -> tuple[dict[str, str], dict[str, Any]]:
    """``(metadata, tensors)`` of one of the toolkit's safetensors files, checked in the
    order that costs least: the bounded header (:func:`safetensors_header`), its
    ``format`` and ``version`` (one of them when ``version`` is a tuple), the caller's
    ``check`` of the metadata and the declared tensors (names, dtypes, shapes, counts:
    nothing is copied yet), the tensors, then the ``digest`` recomputed by ``digest``. The
    caller checks the values after."""
    from safetensors.torch import load as st_load

    meta, specs = safetensors_header(data, what=what, error=error)
    if meta.get("format") != file_format:
        raise _fail(error, f"not an advparams {what} (format {meta.get('format', '')[:40]!r})")
    reads = (version,) if isinstance(version, str) else version
    if meta.get("version") not in reads:
        raise _fail(
            error,
            f"{what} version {meta.get('version', '')[:20]!r} is not supported (this version reads {', '.join(reads)})",
        )
    if check is not None:
        check(meta, specs)
    try:
        tensors = st_load(data)
    except Exception as exc:  # noqa: BLE001  (safetensors raises its own error types)
        raise _fail(error, f"{what} is truncated or corrupt ({type(exc).__name__})") from None
    if meta.get("digest") != digest(meta, tensors):
        raise _fail(error, f"{what} is corrupt or was edited (digest mismatch)")
    return meta, tensors


def is_safetensors_format(path: str | os.PathLike[str], file_format: str, *, what: str, limit: int) -> bool:
    """Whether ``path`` is a regular file of at most ``limit`` bytes holding a safetensors
    file whose metadata names ``file_format`` (what ``--force`` may replace); any file that
    cannot be read as one is not."""
    try:
        data = read_file(path, what=what, limit=limit)
        return safetensors_metadata(data, what=what).get("format") == file_format
    except AdvParamsError:
        return False
