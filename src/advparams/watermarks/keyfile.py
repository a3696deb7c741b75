"""Watermark key files: the owner's key samples, pickle-free (see ``docs/formats.md``).

A watermark key file is a safetensors file with two tensors, ``"images"`` (uint8
``[N, C, H, W]``) and ``"labels"`` (int64 ``[N]``), and string metadata:

=======================  =======================================================
``format``               ``"advparams-watermark"``
``version``              ``"1"``
``scheme``               the watermark's registry name
``config``               its resolved configuration (JSON)
``num_classes``          outputs of the watermarked model
``mean`` / ``std``       the model's input normalisation (JSON lists)
``model_fingerprint``    fingerprint of the watermarked model when it was made
``user``                 the user whose fingerprint the images carry (may be empty)
``created``              ISO-8601 UTC time
``advparams_version``    the version that wrote it
``digest``               SHA-256 over all other metadata and the tensors
=======================  =======================================================

The digest detects corruption and edits; it is not a signature. The file is written
atomically with owner-only permissions: the key samples are the owner's secret.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from advparams import __version__
from advparams._io import atomic_write_bytes
from advparams.errors import KeyFileError
from advparams.keys.io import _metadata, tagged_digest
from advparams.watermarks.base import WatermarkKey

WM_FORMAT = "advparams-watermark"
WM_VERSION = "1"


def _digest(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    return tagged_digest(b"advparams-watermark-digest-v1\0", meta, tensors)


def watermark_key_to_bytes(key: WatermarkKey) -> bytes:
    """Serialises ``key`` as a watermark key file."""
    tensors = {"images": key.images.contiguous(), "labels": key.labels.long().contiguous()}
    meta = {
        "format": WM_FORMAT,
        "version": WM_VERSION,
        "scheme": key.scheme,
        "config": json.dumps(dict(key.config), sort_keys=True),
        "num_classes": str(key.num_classes),
        "mean": json.dumps(list(key.mean)),
        "std": json.dumps(list(key.std)),
        "model_fingerprint": key.model_fingerprint,
        "user": key.user,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "advparams_version": __version__,
    }
    meta["digest"] = _digest(meta, tensors)
    return st_save(tensors, metadata=meta)


def watermark_key_from_bytes(data: bytes) -> WatermarkKey:
    """Parses a watermark key file, checking its format, version and digest."""
    try:
        meta = _metadata(data)
    except KeyFileError:
        raise KeyFileError("not a watermark key file (truncated or corrupt header)") from None
    if meta.get("format") != WM_FORMAT:
        raise KeyFileError(f"not an advparams watermark key file (format {meta.get('format')!r})")
    if meta.get("version") != WM_VERSION:
        raise KeyFileError(f"watermark key version {meta.get('version')!r} is not supported (this reads 1)")
    try:
        tensors = st_load(data)
    except Exception as exc:  # noqa: BLE001  (safetensors raises its own error types)
        raise KeyFileError(f"watermark key file is truncated or corrupt ({type(exc).__name__})") from None
    if meta.get("digest") != _digest(meta, tensors):
        raise KeyFileError("watermark key file is corrupt or was edited (digest mismatch)")
    try:
        if set(tensors) != {"images", "labels"}:
            raise ValueError("unexpected tensors")
        return WatermarkKey(
            scheme=meta["scheme"],
            images=tensors["images"],
            labels=tensors["labels"],
            mean=tuple(float(v) for v in json.loads(meta["mean"])),
            std=tuple(float(v) for v in json.loads(meta["std"])),
            num_classes=int(meta["num_classes"]),
            model_fingerprint=meta.get("model_fingerprint", ""),
            config=json.loads(meta["config"]),
            user=meta.get("user", ""),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise KeyFileError(f"watermark key file is corrupt ({type(exc).__name__}: {exc})") from None


def save_watermark_key(key: WatermarkKey, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Writes ``key`` atomically (owner-only permissions); refuses to overwrite without ``force``."""
    return atomic_write_bytes(path, watermark_key_to_bytes(key), force=force, private=True)


def load_watermark_key(path: str | os.PathLike[str]) -> WatermarkKey:
    """Reads a watermark key file, with one clear error when it cannot be used."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"watermark key file {path} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read watermark key file {path}: {exc.strerror}") from None
    return watermark_key_from_bytes(data)
