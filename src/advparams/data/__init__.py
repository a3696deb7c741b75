"""Data sets, registered by name in :data:`DATASETS`.

Fashion-MNIST is found on the machine (``$ADVPARAMS_DATA``, Debian's
``dataset-fashion-mnist`` package) or downloaded when online; CIFAR-10 and GTSRB are
read from a folder the user names, in their official formats; ``synthetic`` is a tiny
generated set for fast tests.
"""

from __future__ import annotations

from pathlib import Path

from advparams.data import (  # noqa: F401  (registers)
    cifar10,
    colour_fashion_mnist,
    debian_descriptions,
    fashion_mnist,
    gtsrb,
    python_stdlib,
    synthetic,
)
from advparams.data.base import (
    DATASETS,
    DataLike,
    DatasetSpec,
    ImageDataset,
    InMemoryDataset,
    TokenDataset,
    all_labels,
    balanced_indices,
    gather,
    iter_batches,
    num_examples,
)
from advparams.errors import DataError

SPLITS = ("train", "test")


def load_dataset(name: str, split: str = "train", root: str | Path | None = None) -> ImageDataset:
    """Loads split ``split`` (``"train"`` or ``"test"``) of registered data set ``name``.

    Args:
        name: a name from :func:`list_datasets`.
        split: ``"train"`` or ``"test"``.
        root: the folder holding the data set's files; required for data sets that cannot
            be found automatically (CIFAR-10, GTSRB).

    Raises:
        DataError: the files are missing or malformed; the message says how to get them.
    """
    spec = DATASETS.get(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if spec.needs_root and root is None:
        raise DataError(f"{name} cannot be downloaded here: pass the folder that holds it (--data-dir)")
    if root is not None and not Path(root).is_dir():
        raise DataError(f"data folder {root} does not exist")
    return spec.loader(split, Path(root) if root is not None else None)


def list_datasets() -> list[str]:
    """Names of the registered data sets."""
    return DATASETS.names()


__all__ = [
    "DATASETS",
    "DataLike",
    "DatasetSpec",
    "ImageDataset",
    "InMemoryDataset",
    "TokenDataset",
    "all_labels",
    "balanced_indices",
    "gather",
    "iter_batches",
    "list_datasets",
    "load_dataset",
    "num_examples",
]
