"""Shared helpers of the benchmark scripts (not part of the library)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch.nn.functional as F

from advparams.data import ImageDataset, load_dataset
from advparams.environment import environment  # noqa: F401  (re-exported for the scripts)


def fashion_mnist(split: str, size: int = 28, channels: int = 1) -> ImageDataset:
    """Fashion-MNIST, optionally zero-padded to ``size`` and repeated to ``channels`` channels."""
    ds = load_dataset("fashion-mnist", split)
    if size == 28 and channels == 1:
        return ds
    pad = (size - 28) // 2
    images = F.pad(ds.images, (pad, size - 28 - pad, pad, size - 28 - pad)).repeat(1, channels, 1, 1)
    return ImageDataset(
        images,
        ds.labels,
        mean=ds.mean * channels,
        std=ds.std * channels,
        num_classes=10,
        name=f"fashion-mnist-{channels}x{size}",
    )


def append_jsonl(path: str | None, rows: list[dict[str, Any]]) -> None:
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True) + "\n")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (blank lines skipped): what every ``--table`` prints."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
