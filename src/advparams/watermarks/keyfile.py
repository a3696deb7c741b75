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

from advparams.errors import AdvParamsError, KeyFileError
from advparams.files import (
    SecretFormat,
    integer,
    normalisation_field,
    parse_json,
    register_limit,
    string,
)
from advparams.watermarks.base import WatermarkKey

register_limit("watermark-key", 256 * 1024**2)  # a watermark key file

WM_FORMAT = "advparams-watermark"
WM_VERSION = "1"
FORMAT = SecretFormat(WM_FORMAT, WM_VERSION, "watermark key file", "watermark-key", KeyFileError)
"""The file format (:class:`advparams.files.SecretFormat`)."""


def watermark_key_digest(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """The ``digest`` field of a watermark key file with this metadata and these tensors."""
    return FORMAT.digest(meta, tensors)


def watermark_key_to_bytes(key: WatermarkKey) -> bytes:
    """Serialises ``key`` as a watermark key file."""
    tensors = {"images": key.images.contiguous(), "labels": key.labels.long().contiguous()}
    meta = {
        "scheme": key.scheme,
        "config": json.dumps(dict(key.config), sort_keys=True),
        "num_classes": str(key.num_classes),
        "mean": json.dumps(list(key.mean)),
        "std": json.dumps(list(key.std)),
        "model_fingerprint": key.model_fingerprint,
        "user": key.user,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return FORMAT.encode(tensors, meta)


MAX_CLASSES = 100_000


def _floats(meta: dict[str, str], name: str, channels: int) -> tuple[float, ...]:
    return normalisation_field(meta, name, channels, what="watermark key file", error=KeyFileError)


def watermark_key_from_bytes(data: bytes) -> WatermarkKey:
    """Parses a watermark key file, checking its format, version, digest and every field."""
    meta, tensors = FORMAT.decode(data)
    if set(tensors) != {"images", "labels"}:
        raise KeyFileError("watermark key file holds unexpected or missing tensors")
    images, labels = tensors["images"], tensors["labels"]
    if images.dtype != torch.uint8 or images.dim() != 4 or labels.dtype != torch.int64 or labels.dim() != 1:
        raise KeyFileError("watermark key file is corrupt (images must be uint8 [N, C, H, W], labels int64 [N])")
    try:
        num_classes = int(meta.get("num_classes", ""))
    except ValueError:
        raise KeyFileError("watermark key file is corrupt (num_classes is not an integer)") from None
    integer(num_classes, what="watermark key num_classes", lo=2, hi=MAX_CLASSES, error=KeyFileError)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise KeyFileError(f"watermark key file is corrupt (labels outside [0, {num_classes}))")
    config = parse_json(meta.get("config", ""), what="watermark key field 'config'", error=KeyFileError)
    if not isinstance(config, dict):
        raise KeyFileError("watermark key file is corrupt ('config' is not a JSON object)")
    try:
        return WatermarkKey(
            scheme=string(meta.get("scheme"), what="watermark key scheme", max_len=200, error=KeyFileError),
            images=images,
            labels=labels,
            mean=_floats(meta, "mean", int(images.shape[1])),
            std=_floats(meta, "std", int(images.shape[1])),
            num_classes=num_classes,
            model_fingerprint=string(
                meta.get("model_fingerprint", ""), what="fingerprint", max_len=200, error=KeyFileError
            ),
            config=config,
            user=string(meta.get("user", ""), what="watermark key user", max_len=200, error=KeyFileError),
        )
    except KeyFileError:
        raise
    except AdvParamsError as exc:
        raise KeyFileError(f"watermark key file is corrupt ({exc})") from None


def is_watermark_key_file(path: Path) -> bool:
    """Whether ``path`` holds a watermark key file (what ``--force`` may replace)."""
    return FORMAT.is_file(path)


def save_watermark_key(key: WatermarkKey, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Writes ``key`` atomically (owner-only permissions); refuses to overwrite without ``force``."""
    return FORMAT.write(path, watermark_key_to_bytes(key), force=force)


def load_watermark_key(path: str | os.PathLike[str]) -> WatermarkKey:
    """Reads a watermark key file, with one clear error when it cannot be used."""
    return watermark_key_from_bytes(FORMAT.read(path))
