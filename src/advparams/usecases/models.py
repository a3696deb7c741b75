"""Training a checkpoint and measuring one: ``advparams train`` and ``evaluate``, the
demo's training and the evaluation's training subset."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advparams.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from advparams.data import DATASETS, ImageDataset, load_dataset
from advparams.devices import resolve_device
from advparams.errors import ConfigError
from advparams.files import check_output
from advparams.fingerprint import model_fingerprint
from advparams.metrics import accuracy
from advparams.models import MODELS, count_parameters
from advparams.training import TrainConfig, TrainProgress, train_from_seed

SUBSET_SEED = 0
"""The seed of the permutation a training subset is cut from: one fixed subset of a data
set for every training seed, in ``advparams train --train-samples`` as in an evaluation's
``train_samples`` (models of different seeds differ by their seed alone, not their data)."""


def training_subset(data: ImageDataset, samples: int | None) -> ImageDataset:
    """The first ``samples`` of a fixed permutation of ``data`` (:data:`SUBSET_SEED`); all
    of it when ``samples`` is ``None`` or not smaller."""
    if samples is None or samples >= len(data):
        return data
    g = torch.Generator().manual_seed(SUBSET_SEED)
    return data.subset(torch.randperm(len(data), generator=g)[:samples])


def checkpoint_dataset(meta: Mapping[str, Any], dataset: str | None = None) -> str:
    """The data set a command runs on: ``dataset`` if given, else the one the checkpoint
    was trained on.

    Raises:
        ConfigError: neither names one; UnknownNameError: it is not registered.
    """
    name = dataset or meta.get("dataset")
    if not name:
        raise ConfigError("the checkpoint names no data set: pass --dataset")
    DATASETS.get(str(name))
    return str(name)


def distinct_paths(*paths: str | os.PathLike[str]) -> None:
    """Refuses outputs that are the same path as each other or as the input.

    Raises:
        ConfigError: two of them resolve to one path.
    """
    resolved = [Path(p).resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        raise ConfigError("the output paths must differ from each other and from the input")


@dataclass(frozen=True)
class Opened:
    """A checkpoint opened for a verb, with the splits it works on (already checked to fit)."""

    checkpoint: Checkpoint
    dataset: str
    device: torch.device
    train: ImageDataset | None
    test: ImageDataset | None


def open_checkpoint(
    checkpoint: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    train: bool = False,
    test: bool = False,
    unlocked: str | None = None,
) -> Opened:
    """Loads a checkpoint folder and the splits of its data set a verb needs.

    Args:
        dataset: the data set (default: the checkpoint's own).
        train, test: load these splits; the first loaded is checked to fit the model.
        unlocked: refuse a locked checkpoint, with this advice (``"unlock it first"``).
    """
    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, device=dev)
    if unlocked is not None and ckpt.meta.get("locked"):
        raise ConfigError(f"{checkpoint} is locked: {unlocked}")
    name = checkpoint_dataset(ckpt.meta, dataset)
    train_data = load_dataset(name, "train", data_dir) if train else None
    test_data = load_dataset(name, "test", data_dir) if test else None
    first = train_data if train_data is not None else test_data
    if first is not None:
        ckpt.check_fits(first)
    return Opened(ckpt, name, dev, train_data, test_data)


@dataclass(frozen=True)
class Written:
    """What a verb that writes a model beside its secret file did: the input checkpoint,
    the model written, the secret file written first (its path only, never its content),
    the method, the data set and the device."""

    checkpoint: str
    out: Path
    key: Path
    scheme: str
    dataset: str
    device: str


@dataclass(frozen=True)
class Trained:
    """What :func:`train_checkpoint` made (no key material: every field may be printed)."""

    out: Path
    model: nn.Module
    architecture: str
    dataset: str
    test_accuracy: float | None
    train_samples: int
    device: str
    seconds: float

    @property
    def fingerprint(self) -> str:
        """The trained weights' fingerprint."""
        return model_fingerprint(self.model)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary ``advparams train --json`` prints."""
        return {
            "out": str(self.out),
            "model": self.architecture,
            "dataset": self.dataset,
            "accuracy": self.test_accuracy,
            "params_total": count_parameters(self.model),
            "fingerprint": self.fingerprint,
            "seconds": self.seconds,
        }


def train_checkpoint(
    architecture: str,
    dataset: str,
    out: str | os.PathLike[str],
    *,
    options: Mapping[str, Any] | None = None,
    train: TrainConfig | None = None,
    seed: int = 0,
    train_samples: int | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    force: bool = False,
    progress: Callable[[TrainProgress], None] | None = None,
) -> Trained:
    """Trains registered ``architecture`` on ``dataset`` from ``seed`` and writes the
    checkpoint folder ``out`` (with ``force``, replacing only one ``train`` made).

    Args:
        options: the architecture's own arguments (the data set's shape is filled in).
        train: how to train (default :class:`~advparams.training.TrainConfig`).
        train_samples: train on :func:`training_subset` of this size (``None``: all).
        progress: called after every step.
    """
    start = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    check_output(out, force=force, made_by="train")
    dev = resolve_device(device)
    spec = DATASETS.get(dataset)
    MODELS.get(architecture)
    train_data = training_subset(load_dataset(dataset, "train", data_dir), train_samples)
    test_data = load_dataset(dataset, "test", data_dir)
    arguments = {**spec.model_options, **dict(options or {})}
    cfg = train or TrainConfig()
    result = train_from_seed(
        architecture, arguments, train_data, cfg, seed=seed, device=dev, eval_data=test_data, progress=progress
    )
    test_acc = result.history[-1].eval_accuracy if result.history else None
    record = {
        "train": dataclasses.asdict(cfg),
        "seed": seed,
        "train_samples": len(train_data),
        "test_accuracy": test_acc,
        "history": [dataclasses.asdict(h) for h in result.history],
        "device": str(dev),
    }
    save_checkpoint(result.model, out, architecture=architecture, arguments=arguments, dataset=dataset,
                    record=record, force=force, made_by="train")  # fmt: skip
    seconds = time.perf_counter() - start
    return Trained(out, result.model, architecture, dataset, test_acc, len(train_data), str(dev), seconds)


@dataclass(frozen=True)
class Evaluated:
    """What :func:`evaluate_checkpoint` measured."""

    checkpoint: str
    dataset: str
    split: str
    accuracy: float
    samples: int
    locked: bool
    fingerprint: str
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary ``advparams evaluate --json`` prints."""
        return {
            "checkpoint": self.checkpoint,
            "dataset": self.dataset,
            "split": self.split,
            "accuracy": self.accuracy,
            "num_samples": self.samples,
            "locked": self.locked,
            "fingerprint": self.fingerprint,
            "seconds": self.seconds,
        }


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    split: str = "test",
    data_dir: str | None = None,
    device: str = "auto",
) -> Evaluated:
    """The accuracy of the checkpoint folder on ``split`` of ``dataset`` (default: the
    checkpoint's own data set)."""
    start = time.perf_counter()
    ckpt = load_checkpoint(checkpoint, device=resolve_device(device))
    name = checkpoint_dataset(ckpt.meta, dataset)
    data = load_dataset(name, split, data_dir)
    ckpt.check_fits(data)
    acc = accuracy(ckpt.model, data)
    locked, fingerprint = bool(ckpt.meta.get("locked")), str(ckpt.meta["fingerprint"])
    return Evaluated(str(checkpoint), name, split, acc, len(data), locked, fingerprint, time.perf_counter() - start)


__all__ = [
    "SUBSET_SEED",
    "Evaluated",
    "Opened",
    "Trained",
    "Written",
    "checkpoint_dataset",
    "distinct_paths",
    "evaluate_checkpoint",
    "open_checkpoint",
    "train_checkpoint",
    "training_subset",
]
