"""Ownership fingerprint files: the owner's probes and what the model made of them, pickle-free
(see ``docs/formats.md``).

A fingerprint file is a safetensors file with the tensors ``"inputs"`` (float32
``[N, C, H, W]``: the probes as model inputs), ``"labels"`` (int64 ``[N]``: the owner
model's answers) and, for InFIP, ``"maps"`` (float32 ``[N, 1, H, W]``: the fingerprint
images, in [0, 1]), and string metadata:

=======================  =======================================================
``format``               ``"advparams-fingerprint"``
``version``              ``"1"``
``scheme``               the fingerprint's registry name
``config``               its resolved configuration (JSON)
``num_classes``          outputs of the owner's model
``mean`` / ``std``       the model's input normalisation (JSON lists)
``model_fingerprint``    digest of the owner's model when the fingerprint was taken
``created``              ISO-8601 UTC time
``advparams_version``    the version that wrote it
``digest``               SHA-256 over all other metadata and the tensors
=======================  =======================================================

The digest detects corruption and edits; it is not a signature. The file is written
atomically with owner-only permissions: whoever holds the probes can tune a stolen copy
against them. On reading, the metadata and the tensors' declared shapes are checked from
the header (:func:`~advparams.fingerprints.base.check_probe_shape`), before a byte of the
tensors is copied or the digest computed.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import torch

from advparams.errors import AdvParamsError, FingerprintFileError
from advparams.files import (
    SecretFormat,
    TensorSpec,
    integer,
    normalisation_field,
    parse_json,
    register_limit,
    string,
)
from advparams.fingerprints.base import FINGERPRINTS, Fingerprint, check_probe_shape

register_limit(
    "fingerprint", 160 * 1024**2
)  # an ownership fingerprint file: probes and maps of at most 2^24 values each

FP_FORMAT = "advparams-fingerprint"
FP_VERSION = "1"
MAX_CLASSES = 100_000
"""``num_classes`` of a fingerprint file is in ``[2, MAX_CLASSES]``."""
MAX_CONFIG_VALUES = 10_000
"""The most JSON values of the ``config`` field."""
WHAT = "fingerprint file"
FORMAT = SecretFormat(FP_FORMAT, FP_VERSION, WHAT, "fingerprint", FingerprintFileError)
"""The file format (:class:`advparams.files.SecretFormat`)."""


def fingerprint_digest(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """The ``digest`` field of a fingerprint file with this metadata and these tensors."""
    return FORMAT.digest(meta, tensors)


def fingerprint_to_bytes(fp: Fingerprint) -> bytes:
    """Serialises ``fp`` as a fingerprint file."""
    tensors = {"inputs": fp.inputs.float().contiguous(), "labels": fp.labels.long().contiguous()}
    if fp.maps is not None:
        tensors["maps"] = fp.maps.float().contiguous()
    meta = {
        "scheme": fp.scheme,
        "config": json.dumps(dict(fp.config), sort_keys=True),
        "num_classes": str(fp.num_classes),
        "mean": json.dumps(list(fp.mean)),
        "std": json.dumps(list(fp.std)),
        "model_fingerprint": fp.model_fingerprint,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return FORMAT.encode(tensors, meta)


def _floats(meta: dict[str, str], name: str, channels: int) -> tuple[float, ...]:
    return normalisation_field(meta, name, channels, what="fingerprint file", error=FingerprintFileError)


def _check_header(meta: dict[str, str], specs: dict[str, TensorSpec]) -> dict[str, Any]:
    """The metadata fields and the tensors' declared names, dtypes and shapes, before any
    tensor is copied: ``inputs`` float32 ``[N, C, H, W]`` within the probe limits,
    ``labels`` int64 ``[N]``, ``maps`` (InFIP) float32 ``[N, 1, H, W]``."""
    scheme = string(meta.get("scheme"), what="fingerprint scheme", max_len=200, error=FingerprintFileError)
    if scheme not in FINGERPRINTS:
        raise FingerprintFileError(
            f"{WHAT} names an unknown fingerprint {scheme[:40]!r}; known: {', '.join(FINGERPRINTS.names())}"
        )
    wanted = {"inputs", "labels", "maps"} if scheme == "infip" else {"inputs", "labels"}
    if set(specs) != wanted:
        raise FingerprintFileError(
            f"{WHAT} holds unexpected or missing tensors (a {scheme} file holds {', '.join(sorted(wanted))})"
        )
    inputs = specs["inputs"]
    if inputs.dtype != "F32" or len(inputs.shape) != 4:
        raise FingerprintFileError(f"{WHAT} is corrupt (inputs must be float32 [N, C, H, W])")
    try:
        check_probe_shape(inputs.shape)
    except AdvParamsError as exc:
        raise FingerprintFileError(f"{WHAT} is corrupt ({exc})") from None
    n, c, h, w = inputs.shape
    if specs["labels"].dtype != "I64" or specs["labels"].shape != (n,):
        raise FingerprintFileError(f"{WHAT} is corrupt (labels must be int64 [{n}], one per probe)")
    if "maps" in specs and (specs["maps"].dtype != "F32" or specs["maps"].shape != (n, 1, h, w)):
        raise FingerprintFileError(f"{WHAT} is corrupt (maps must be float32 [{n}, 1, {h}, {w}])")
    try:
        num_classes = int(meta.get("num_classes", ""))
    except ValueError:
        raise FingerprintFileError(f"{WHAT} is corrupt (num_classes is not an integer)") from None
    integer(num_classes, what="fingerprint num_classes", lo=2, hi=MAX_CLASSES, error=FingerprintFileError)
    config = parse_json(
        meta.get("config", ""), what=f"{WHAT} field 'config'", error=FingerprintFileError, max_nodes=MAX_CONFIG_VALUES
    )
    if not isinstance(config, dict):
        raise FingerprintFileError(f"{WHAT} is corrupt ('config' is not a JSON object)")
    try:
        FINGERPRINTS.build(scheme, config)
    except AdvParamsError as exc:
        raise FingerprintFileError(f"{WHAT} is corrupt ({exc})") from None
    return {
        "scheme": scheme,
        "num_classes": num_classes,
        "config": config,
        "mean": _floats(meta, "mean", c),
        "std": _floats(meta, "std", c),
        "model_fingerprint": string(
            meta.get("model_fingerprint", ""), what="model fingerprint", max_len=200, error=FingerprintFileError
        ),
    }


def fingerprint_from_bytes(data: bytes) -> Fingerprint:
    """Parses a fingerprint file, checking its format, version, fields and declared
    shapes, then its digest and values, in the order that costs least."""
    fields: dict[str, Any] = {}
    meta, tensors = FORMAT.decode(data, check=lambda meta, specs: fields.update(_check_header(meta, specs)))
    try:
        return Fingerprint(inputs=tensors["inputs"], labels=tensors["labels"], maps=tensors.get("maps"), **fields)
    except AdvParamsError as exc:
        raise FingerprintFileError(f"{WHAT} is corrupt ({exc})") from None


def is_fingerprint_file(path: Path) -> bool:
    """Whether ``path`` holds a fingerprint file (what ``--force`` may replace)."""
    return FORMAT.is_file(path)


def save_fingerprint(fp: Fingerprint, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Writes ``fp`` atomically (owner-only permissions); refuses to overwrite without
    ``force``, and ``force`` replaces only a fingerprint file."""
    return FORMAT.write(path, fingerprint_to_bytes(fp), force=force)


def load_fingerprint(path: str | os.PathLike[str]) -> Fingerprint:
    """Reads a fingerprint file, with one clear error when it cannot be used."""
    return fingerprint_from_bytes(FORMAT.read(path))


__all__ = [
    "FORMAT",
    "FP_FORMAT",
    "FP_VERSION",
    "fingerprint_digest",
    "fingerprint_from_bytes",
    "fingerprint_to_bytes",
    "is_fingerprint_file",
    "load_fingerprint",
    "save_fingerprint",
]
