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
from advparams.data.base import num_examples
from advparams.devices import resolve_device
from advparams.errors import ConfigError
from advparams.files import check_output
from advparams.fingerprint import model_fingerprint
from advparams.keys import Key
from advparams.metrics import accuracy
from advparams.models import MODELS, count_parameters
from advparams.training import TrainConfig, TrainProgress, train_from_seed
from advparams.usecases.data import SUBSET_SEED, checkpoint_data, checkpoint_dataset, training_subset


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
        train, test: load these splits, each as the model takes it (a Hugging Face
            folder's image processor) and checked to fit the model.
        unlocked: refuse a locked checkpoint, with this advice (``"unlock it first"``).
    """
    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, device=dev)
    if unlocked is not None and ckpt.meta.get("locked"):
        raise ConfigError(f"{checkpoint} is locked: {unlocked}")
    name = checkpoint_dataset(ckpt.meta, dataset)
    train_data = checkpoint_data(ckpt, "train", dataset=name, data_dir=data_dir)[1] if train else None
    test_data = checkpoint_data(ckpt, "test", dataset=name, data_dir=data_dir)[1] if test else None
    return Opened(ckpt, name, dev, train_data, test_data)  # type: ignore[arg-type]


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
        # floating-point sums on the CPU depend on the thread count: the same seed on another
        # count trains a slightly different model
        "torch_threads": torch.get_num_threads(),
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
    data: str | os.PathLike[str] | None = None,
    split: str = "test",
    data_dir: str | None = None,
    device: str = "auto",
    key: Key | None = None,
) -> Evaluated:
    """The accuracy of the checkpoint folder on ``split`` of ``dataset`` (default: the
    checkpoint's own data set) or of the user's own ``data``
    (:func:`~advparams.usecases.data.checkpoint_data`); with a locked folder's ``key``,
    of the model unlocked in memory (:func:`advparams.keys.unlock_`, nothing written).

    Raises:
        KeyMismatchError: ``key`` is not this model's.
    """
    from advparams.keys import unlock_

    start = time.perf_counter()
    ckpt = load_checkpoint(checkpoint, device=resolve_device(device))
    if key is not None:
        unlock_(ckpt.model, key)
    name, loaded = checkpoint_data(ckpt, split, dataset=dataset, data=data, data_dir=data_dir)
    acc = accuracy(ckpt.model, loaded)
    locked = bool(ckpt.meta.get("locked")) and key is None
    fingerprint = key.original_fingerprint if key is not None else str(ckpt.meta["fingerprint"])
    samples = num_examples(loaded)
    return Evaluated(str(checkpoint), name, split, acc, samples, locked, fingerprint, time.perf_counter() - start)


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
