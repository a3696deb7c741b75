"""Query files: the owner's secret black-box queries, pickle-free (``docs/formats.md``).

A query file is a safetensors file holding one float32 tensor, ``inputs`` (the queries,
in the order they are asked), and string metadata:

======================  ==========================================================
``format``              ``"advparams-trace-queries"``
``version``             ``"1"``
``code``                the public name of the users' code (:func:`query_code_id`)
``original``            the fingerprint of the original model the queries were made on
``mark``                the roster's mark settings (JSON)
``config``              the :class:`QueryConfig` (JSON)
``created``             ISO-8601 UTC time
``advparams_version``   the version that wrote it
``digest``              SHA-256 over all other metadata and the tensor
======================  ==========================================================

It holds no secret of the code, but it is the owner's: whoever knows the queries can
tell them from ordinary inputs. Tracing refuses a query file made for another code or
another original model.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advparams.errors import QueryFileError
from advparams.files import (
    SecretFormat,
    TensorSpec,
    parse_json,
    register_limit,
)
from advparams.registry import config_from_dict, config_to_dict
from advparams.tracing.mark import MarkConfig
from advparams.tracing.queries import QueryConfig

register_limit("trace-queries", 256 * 1024**2)  # a tracing query file (a batch of inputs)

__all__ = ["QUERY_FORMAT", "QuerySet", "is_query_file", "load_queries", "save_queries"]

QUERY_FORMAT = "advparams-trace-queries"
QUERY_VERSION = "1"
FORMAT = SecretFormat(QUERY_FORMAT, QUERY_VERSION, "query file", "trace-queries", QueryFileError)
"""The file format (:class:`advparams.files.SecretFormat`)."""
_FINGERPRINT_LEN = 71  # "sha256:" + 64 hex digits


@dataclass(frozen=True, eq=False)
class QuerySet:
    """Secret queries and what they were made for.

    Attributes:
        inputs: the queries (float32, one per row).
        code: the public name of the users' code.
        original: the fingerprint of the original model.
        mark: the roster's mark settings.
        config: the settings the queries were made with.
    """

    inputs: torch.Tensor
    code: str
    original: str
    mark: MarkConfig
    config: QueryConfig


def _digest(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    return FORMAT.digest(meta, tensors)


def queries_to_bytes(q: QuerySet) -> bytes:
    """Serialises a query set."""
    tensors = {"inputs": q.inputs.detach().cpu().float().contiguous()}
    meta = {
        "code": q.code,
        "original": q.original,
        "mark": json.dumps(config_to_dict(q.mark), sort_keys=True),
        "config": json.dumps(config_to_dict(q.config), sort_keys=True),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return FORMAT.encode(tensors, meta)


def _json(meta: dict[str, str], name: str) -> Any:
    value = parse_json(meta.get(name, ""), what=f"query file field {name!r}", error=QueryFileError)
    if not isinstance(value, dict):
        raise QueryFileError(f"query file is corrupt ({name!r} is not a JSON object)")
    return value


MAX_QUERY_SIDE = 1024
"""Largest side of a query (each dimension after the first), checked from the header."""
MAX_QUERY_VALUES = 2**24
"""Most values of one query, checked from the header (a 3x1024x1024 image is 3,145,728)."""


def _check_specs(meta: dict[str, str], specs: dict[str, TensorSpec]) -> None:
    """The declared tensors, before any is copied: one float32 batch of queries whose
    every query fits :data:`MAX_QUERY_SIDE` and :data:`MAX_QUERY_VALUES`."""
    if set(specs) != {"inputs"}:
        raise QueryFileError("query file holds unexpected or missing tensors")
    spec = specs["inputs"]
    if spec.dtype != "F32" or len(spec.shape) < 2 or spec.shape[0] < 1:
        raise QueryFileError("query file is corrupt ('inputs' is not a float32 batch)")
    each = spec.shape[1:]
    if max(each) > MAX_QUERY_SIDE or math.prod(each) > MAX_QUERY_VALUES:
        raise QueryFileError(
            f"the queries are {'x'.join(map(str, each))} inputs: at most {MAX_QUERY_SIDE} per side and "
            f"{MAX_QUERY_VALUES} values each"
        )


def queries_from_bytes(data: bytes) -> QuerySet:
    """Parses a query file, checking its format, version, digest and every field (the
    queries' shape from the header, before any tensor is copied)."""
    meta, tensors = FORMAT.decode(data, check=_check_specs)
    if set(tensors) != {"inputs"}:
        raise QueryFileError("query file holds unexpected or missing tensors")
    inputs = tensors["inputs"]
    if inputs.dtype != torch.float32 or inputs.dim() < 2 or len(inputs) < 1:
        raise QueryFileError("query file is corrupt ('inputs' is not a float32 batch)")
    if not bool(torch.isfinite(inputs).all()):
        raise QueryFileError("query file is corrupt (an input is not finite)")
    for name in ("code", "original"):
        v = meta.get(name, "")
        if not v.startswith("sha256:") or len(v) != _FINGERPRINT_LEN:
            raise QueryFileError(f"query file is corrupt ({name!r} is not a sha256 name)")
    try:
        mark = config_from_dict(MarkConfig, _json(meta, "mark"), what="query file mark")
        config = config_from_dict(QueryConfig, _json(meta, "config"), what="query file config")
    except QueryFileError:
        raise
    except Exception as exc:  # noqa: BLE001  (a config error names the field)
        raise QueryFileError(f"query file is corrupt ({exc})") from None
    if config.queries != len(inputs):
        raise QueryFileError("query file is corrupt (the number of inputs does not match its config)")
    return QuerySet(inputs, meta["code"], meta["original"], mark, config)


def is_query_file(path: Path) -> bool:
    """Whether ``path`` holds a query file (what ``--force`` may replace)."""
    return FORMAT.is_file(path)


def save_queries(q: QuerySet, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Writes a query file atomically (owner-only permissions); with ``force`` it replaces
    only an existing query file."""
    return FORMAT.write(path, queries_to_bytes(q), force=force)


def load_queries(path: str | os.PathLike[str]) -> QuerySet:
    """Reads a query file (a regular file, at most ``LIMITS["trace-queries"]`` bytes)."""
    return queries_from_bytes(FORMAT.read(path))
