"""Data for Hugging Face models: images passed through the folder's own image processor,
text through its own tokenizer.

Images come from a data set the toolkit knows (``--dataset fashion-mnist``) or from the
user's folder of images by class; they are brought to what the folder's
``preprocessor_config.json`` asks (size, channels, mean and standard deviation; the pixel
scale is always 1/255). Text comes from the user's JSONL (``{"text": ..., "label": ...}``
per line) or CSV (columns ``text`` and ``label``), tokenised with the folder's tokenizer,
truncated and padded to one length; the model reads the padding mask from the token ids
(:func:`attend_to_tokens`), so that ``model(ids)`` answers as ``model(ids, attention_mask)``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advparams.data.base import ImageDataset
from advparams.errors import DataError
from advparams.files import LIMITS, read_file, register_limit
from advparams.huggingface.common import quiet, read_json

register_limit("text-data", 512 * 1024**2)  # a JSONL or CSV of texts and labels

PROCESSOR = "preprocessor_config.json"
MAX_TEXTS = 10_000_000
MAX_LENGTH = 512
"""Tokens per text at most (``--max-length`` and the model's positions can only lower it)."""


def processor_of(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The folder's image processor settings (empty when it has none)."""
    path = Path(folder) / PROCESSOR
    return read_json(path, "image processor config") if path.exists() else {}


def _size(processor: dict[str, Any], config: dict[str, Any]) -> tuple[int, int]:
    size = processor.get("size") if processor.get("do_resize", True) else None
    if isinstance(size, dict) and isinstance(size.get("height"), int) and isinstance(size.get("width"), int):
        return int(size["height"]), int(size["width"])
    if isinstance(size, dict) and isinstance(size.get("shortest_edge"), int):
        return int(size["shortest_edge"]), int(size["shortest_edge"])
    side = config.get("image_size")
    if isinstance(side, int) and not isinstance(side, bool):
        return side, side
    raise DataError("the model's config gives no image_size and its processor no size")


def prepare_images(data: ImageDataset, config: dict[str, Any], processor: dict[str, Any]) -> ImageDataset:
    """``data`` as the folder's model takes it: resized (bilinear, antialiased) to the
    processor's size, grey images repeated to the model's channels, normalised with the
    processor's ``image_mean`` / ``image_std`` (the data set's own when it gives none).

    Raises:
        DataError: colour images for a one-channel model, or settings it cannot follow.
    """
    factor = processor.get("rescale_factor", 1 / 255)
    if (
        processor.get("do_rescale", True) is False
        or not isinstance(factor, (int, float))
        or abs(factor - 1 / 255) > 1e-9
    ):
        raise DataError("the image processor scales pixels other than by 1/255, which is not supported")
    channels = config.get("num_channels", 3)
    images = data.images
    c = images.shape[1]
    if c != channels:
        if c != 1:
            raise DataError(f"{data.name} has {c} channels, the model takes {channels}")
        images = images.expand(-1, channels, -1, -1).contiguous()
    h, w = _size(processor, config)
    if tuple(images.shape[2:]) != (h, w):
        resized = F.interpolate(images.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        images = resized.round().clamp(0, 255).to(torch.uint8)
    mean, std = data.mean, data.std
    if processor.get("do_normalize", True) and "image_mean" in processor:
        mean, std = _per_channel(processor["image_mean"], channels), _per_channel(processor.get("image_std"), channels)
        if any(s <= 0 for s in std):
            raise DataError("the image processor's image_std must be positive")
    elif len(mean) != channels:
        mean, std = mean * channels, std * channels
    return ImageDataset(images, data.labels, mean=mean, std=std, num_classes=data.num_classes, name=data.name)


def _per_channel(values: Any, channels: int) -> tuple[float, ...]:
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values) or not values:
        raise DataError("the image processor's image_mean / image_std must be numbers")
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise DataError(f"the image processor gives {len(values)} means or deviations for {channels} channels")
    return tuple(float(v) for v in values)


def read_texts(path: str | os.PathLike[str]) -> tuple[list[str], list[Any]]:
    """Texts and labels from a JSONL (``text`` and ``label`` on each line) or a CSV (a
    header with ``text`` and ``label``).

    Raises:
        DataError: a malformed line or row, a missing field, or no texts at all.
    """
    p = Path(path)
    raw = read_file(p, what="text data", limit=LIMITS["text-data"], error=DataError)
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{p} is not UTF-8 text") from None
    if p.suffix.lower() == ".csv":
        rows: list[Any] = list(csv.DictReader(io.StringIO(body)))
        where = "row"
    else:
        rows, where = [], "line"
        for i, line in enumerate(body.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    raise DataError(f"{p}: line {i} is not JSON") from None
    texts, labels = [], []
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or row.get("label") in (None, ""):
            raise DataError(f"{p}: {where} {i} needs a text and a label")
        texts.append(row["text"])
        labels.append(row["label"])
    if not texts or len(texts) > MAX_TEXTS:
        raise DataError(f"{p} holds {len(texts)} texts (1 to {MAX_TEXTS} are read)")
    return texts, labels


def label_ids(labels: Sequence[Any], config: dict[str, Any], where: str) -> torch.Tensor:
    """Labels as class indices: integers (or their digits) below the number of classes,
    or the names of the config's ``label2id``."""
    found = config.get("label2id")
    names: dict[str, Any] = found if isinstance(found, dict) else {}
    classes = len(config["id2label"]) if isinstance(config.get("id2label"), dict) else 2
    out = []
    for label in labels:
        value = names.get(label) if isinstance(label, str) and label in names else label
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < classes:
            raise DataError(f"{where}: label {str(label)[:40]!r} is not one of the model's {classes} classes")
        out.append(value)
    return torch.tensor(out, dtype=torch.long)


def tokenize(folder: str | os.PathLike[str], texts: Sequence[str], max_length: int) -> torch.Tensor:
    """Token ids ``[N, L]`` of ``texts`` by the folder's own tokenizer (special tokens added,
    truncated to ``max_length``, padded with its pad token to the longest)."""
    try:
        from transformers import AutoTokenizer
    except ImportError:  # pragma: no cover - transformers is there whenever a folder loaded
        raise DataError("tokenising needs transformers: pip install 'advparams[huggingface]'") from None
    with quiet():
        try:
            tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{folder} holds no tokenizer that loads ({type(exc).__name__})") from None
    if tok.pad_token_id is None:
        raise DataError(f"the tokenizer of {folder} has no pad token")
    enc = tok(list(texts), truncation=True, max_length=max_length, padding="longest", return_tensors="pt")
    return enc["input_ids"].long()


def attend_to_tokens(model: nn.Module, pad_token_id: int) -> None:
    """Makes ``model(ids)`` pass ``attention_mask = ids != pad_token_id`` when the caller
    gives no mask (a forward pre-hook: the model's parameters and names are unchanged, and
    a copy of the model keeps the hook)."""

    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        ids = args[0] if args else kwargs.get("input_ids")
        if isinstance(ids, torch.Tensor) and kwargs.get("attention_mask") is None and not ids.is_floating_point():
            kwargs["attention_mask"] = (ids != pad_token_id).long()
        return args, kwargs

    model.register_forward_pre_hook(hook, with_kwargs=True)


__all__ = ["attend_to_tokens", "label_ids", "prepare_images", "processor_of", "read_texts", "tokenize"]
