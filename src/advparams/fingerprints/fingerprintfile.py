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
against them.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save as st_save

from advparams import __version__
from advparams.errors import AdvParamsError, FingerprintFileError
from advparams.files import (
    LIMITS,
    atomic_write_bytes,
    integer,
    is_safetensors_format,
    normalisation_field,
    open_safetensors,
    parse_json,
    read_file,
    string,
)
from advparams.fingerprints.base import FINGERPRINTS, Fingerprint
from advparams.keys.io import tagged_digest

FP_FORMAT = "advparams-fingerprint"
FP_VERSION = "1"
MAX_CLASSES = 100_000
WHAT = "fingerprint file"


def fingerprint_digest(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """The ``digest`` field of a fingerprint file with this metadata and these tensors."""
    return tagged_digest(b"advparams-fingerprint-digest-v1\0", meta, tensors)


def fingerprint_to_bytes(fp: Fingerprint) -> bytes:
    """Serialises ``fp`` as a fingerprint file."""
    tensors = {"inputs": fp.inputs.float().contiguous(), "labels": fp.labels.long().contiguous()}
    if fp.maps is not None:
        tensors["maps"] = fp.maps.float().contiguous()
    meta = {
        "format": FP_FORMAT,
        "version": FP_VERSION,
        "scheme": fp.scheme,
        "config": json.dumps(dict(fp.config), sort_keys=True),
        "num_classes": str(fp.num_classes),
        "mean": json.dumps(list(fp.mean)),
        "std": json.dumps(list(fp.std)),
        "model_fingerprint": fp.model_fingerprint,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "advparams_version": __version__,
    }
    meta["digest"] = fingerprint_digest(meta, tensors)
    return st_save(tensors, metadata=meta)


def _floats(meta: dict[str, str], name: str, channels: int) -> tuple[float, ...]:
    return normalisation_field(meta, name, channels, what="fingerprint file", error=FingerprintFileError)


def fingerprint_from_bytes(data: bytes) -> Fingerprint:
    """Parses a fingerprint file, checking its format, version, digest and every field."""
    meta, tensors = open_safetensors(
        data,
        what=WHAT,
        file_format=FP_FORMAT,
        version=FP_VERSION,
        digest=fingerprint_digest,
        error=FingerprintFileError,
    )
    scheme = string(meta.get("scheme"), what="fingerprint scheme", max_len=200, error=FingerprintFileError)
    if scheme not in FINGERPRINTS:
        raise FingerprintFileError(
            f"{WHAT} names an unknown fingerprint {scheme[:40]!r}; known: {', '.join(FINGERPRINTS.names())}"
        )
    wanted = {"inputs", "labels", "maps"} if scheme == "infip" else {"inputs", "labels"}
    if set(tensors) != wanted:
        raise FingerprintFileError(f"{WHAT} holds unexpected or missing tensors")
    inputs = tensors["inputs"]
    if inputs.dim() != 4:
        raise FingerprintFileError(f"{WHAT} is corrupt (inputs must be float32 [N, C, H, W])")
    try:
        num_classes = int(meta.get("num_classes", ""))
    except ValueError:
        raise FingerprintFileError(f"{WHAT} is corrupt (num_classes is not an integer)") from None
    integer(num_classes, what="fingerprint num_classes", lo=2, hi=MAX_CLASSES, error=FingerprintFileError)
    config = parse_json(meta.get("config", ""), what=f"{WHAT} field 'config'", error=FingerprintFileError)
    if not isinstance(config, dict):
        raise FingerprintFileError(f"{WHAT} is corrupt ('config' is not a JSON object)")
    try:
        FINGERPRINTS.build(scheme, config)
        return Fingerprint(
            scheme=scheme,
            inputs=inputs,
            labels=tensors["labels"],
            maps=tensors.get("maps"),
            mean=_floats(meta, "mean", int(inputs.shape[1])),
            std=_floats(meta, "std", int(inputs.shape[1])),
            num_classes=num_classes,
            model_fingerprint=string(
                meta.get("model_fingerprint", ""), what="model fingerprint", max_len=200, error=FingerprintFileError
            ),
            config=config,
        )
    except FingerprintFileError:
        raise
    except AdvParamsError as exc:
        raise FingerprintFileError(f"{WHAT} is corrupt ({exc})") from None


def is_fingerprint_file(path: Path) -> bool:
    """Whether ``path`` holds a fingerprint file (what ``--force`` may replace)."""
    return is_safetensors_format(path, FP_FORMAT, what=WHAT, limit=LIMITS["fingerprint"])


def save_fingerprint(fp: Fingerprint, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Writes ``fp`` atomically (owner-only permissions); refuses to overwrite without
    ``force``, and ``force`` replaces only a fingerprint file."""
    return atomic_write_bytes(path, fingerprint_to_bytes(fp), force=force, private=True, accept=is_fingerprint_file)


def load_fingerprint(path: str | os.PathLike[str]) -> Fingerprint:
    """Reads a fingerprint file, with one clear error when it cannot be used."""
    data = read_file(path, what=WHAT, limit=LIMITS["fingerprint"], error=FingerprintFileError)
    return fingerprint_from_bytes(data)


__all__ = [
    "FP_FORMAT",
    "FP_VERSION",
    "fingerprint_digest",
    "fingerprint_from_bytes",
    "fingerprint_to_bytes",
    "is_fingerprint_file",
    "load_fingerprint",
    "save_fingerprint",
]
