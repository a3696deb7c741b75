"""CIFAR-10 (Krizhevsky, 2009) from a user-supplied folder in an official format.

Two official layouts are read, both without unpickling:

* the "python version", ``cifar-10-batches-py/data_batch_{1..5}`` and ``test_batch``:
  pickled dicts decoded by :mod:`advparams.data._pickle_data` (data only, no code run);
* the "binary version", ``cifar-10-batches-bin/data_batch_{1..5}.bin`` and
  ``test_batch.bin``: records of one label byte and 3,072 pixel bytes.

``root`` may be the batches folder itself or the folder that contains it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from advparams.data._pickle_data import loads_data
from advparams.data.base import DATASETS, DatasetSpec, ImageDataset
from advparams.errors import DataError
from advparams.files import LIMITS, read_file

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
RECORD = 1 + 3 * 32 * 32


def _find(root: Path) -> tuple[str, Path]:
    for kind, sub in (("py", "cifar-10-batches-py"), ("bin", "cifar-10-batches-bin")):
        for d in (root, root / sub):
            suffix = ".bin" if kind == "bin" else ""
            if (d / f"test_batch{suffix}").is_file() or (d / f"data_batch_1{suffix}").is_file():
                return kind, d
    raise DataError(
        f"no CIFAR-10 batches in {root}: expected cifar-10-batches-py/ (python version) or "
        "cifar-10-batches-bin/ (binary version) from https://www.cs.toronto.edu/~kriz/cifar.html"
    )


def read_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Reads one python-version batch: ``(images [N, 3, 32, 32] uint8, labels [N])``."""
    raw = read_file(path, what="CIFAR-10 batch", limit=LIMITS["cifar-batch"], error=DataError)
    batch = loads_data(raw, what=str(path))
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch (not a dict)")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or not isinstance(labels, (list, tuple, np.ndarray)):
        raise DataError(f"{path} is not a CIFAR-10 batch (no data/labels)")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != data.shape[0]:
        raise DataError(f"{path} is not a CIFAR-10 batch (data {data.dtype} {data.shape}, {len(labels)} labels)")
    if isinstance(labels, np.ndarray):
        ok = labels.ndim == 1 and labels.dtype.kind in "iu"
    else:
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in labels)
    y = np.asarray(labels, dtype=np.int64) if ok else None
    if y is None or (y.size and (y.min() < 0 or y.max() > 9)):
        raise DataError(f"{path} is not a CIFAR-10 batch (labels must be integers 0-9)")
    return data.reshape(-1, 3, 32, 32), y


def read_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Reads one binary-version batch: ``(images [N, 3, 32, 32] uint8, labels [N])``."""
    raw = np.frombuffer(
        read_file(path, what="CIFAR-10 batch", limit=LIMITS["cifar-batch"], error=DataError), dtype=np.uint8
    )
    if raw.size == 0 or raw.size % RECORD:
        raise DataError(f"{path} has {raw.size} bytes, not a multiple of {RECORD}: truncated or not CIFAR-10")
    rec = raw.reshape(-1, RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"{path} is not a CIFAR-10 batch (a label byte exceeds 9)")
    return rec[:, 1:].reshape(-1, 3, 32, 32), labels


def load(split: str, root: Path | None) -> ImageDataset:
    """Loads the ``split`` of CIFAR-10 from ``root``."""
    if root is None:
        raise DataError("CIFAR-10 needs --data-dir")
    kind, d = _find(root)
    xs, ys = [], []
    for name in BATCHES[split]:
        path = d / (name + (".bin" if kind == "bin" else ""))
        if not path.is_file():
            raise DataError(f"CIFAR-10 batch {path} is missing")
        x, y = (read_binary_batch if kind == "bin" else read_python_batch)(path)
        xs.append(x)
        ys.append(y)
    labels = torch.from_numpy(np.concatenate(ys))
    if int(labels.max()) > 9:
        raise DataError(f"CIFAR-10 labels in {d} exceed 9: not CIFAR-10")
    images = torch.from_numpy(np.ascontiguousarray(np.concatenate(xs)))
    return ImageDataset(images, labels, mean=MEAN, std=STD, num_classes=10, name="cifar10")


DATASETS.register("cifar10")(
    DatasetSpec(
        name="cifar10",
        num_classes=10,
        in_channels=3,
        input_size=32,
        loader=load,
        needs_root=True,
        description="CIFAR-10, 32x32 colour, 10 classes (official python or binary batches in --data-dir)",
    )
)
