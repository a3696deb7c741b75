"""Supervised training of a classifier or a language model (used to make the models that
are then protected): the loss is the cross-entropy of the data's task
(:func:`advparams.tasks.task_of`): of class scores against labels, or of each next token."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from advparams._rng import isolated_seed
from advparams.data.base import DataLike, iter_batches, num_examples
from advparams.devices import model_device
from advparams.metrics import accuracy
from advparams.registry import validated
from advparams.tasks import task_of


@dataclass(frozen=True)
@validated
class TrainConfig:
    """Training hyper-parameters.

    Attributes:
        epochs: passes over the training data.
        batch_size: samples per step.
        lr: learning rate.
        optimizer: ``"adam"`` or ``"sgd"`` (with momentum).
        momentum: SGD momentum.
        weight_decay: L2 penalty.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did."""

    epoch: int
    loss: float
    train_accuracy: float
    eval_accuracy: float | None
    seconds: float


@dataclass(frozen=True)
class TrainProgress:
    """Passed to the progress callback after every step."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    record: EpochRecord | None = None  # set on the last step of an epoch


@dataclass
class TrainResult:
    """A trained copy of the model and its history."""

    model: nn.Module
    history: list[EpochRecord] = field(default_factory=list)


def make_optimizer(net: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``cfg`` names over ``net``'s trainable parameters."""
    params = [p for p in net.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def train(
    model: nn.Module,
    data: DataLike,
    config: TrainConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    eval_data: DataLike | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Trains a copy of ``model`` on ``data`` with cross-entropy (of the data's task: a
    language model's per token, its accuracy the next-token accuracy); ``model`` is not changed.

    The copy stays on ``model``'s device. Shuffling uses ``generator``; dropout and other
    in-model randomness use torch's global generator (seed it in your script).
    """
    cfg = config or TrainConfig()
    net = copy.deepcopy(model)
    device = model_device(net)
    opt = make_optimizer(net, cfg)
    steps = -(-num_examples(data) // cfg.batch_size)
    task = task_of(data)
    history: list[EpochRecord] = []
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        start = time.perf_counter()
        total_loss, correct, seen = 0.0, 0, 0
        for step, (x, y) in enumerate(iter_batches(data, cfg.batch_size, shuffle=True, generator=generator), 1):
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            out, y = task.outputs(net, x, y)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            total_loss += float(loss.detach()) * len(y)
            correct += int((out.argmax(1) == y).sum())
            seen += len(y)
            record = None
            if step == steps:
                eval_acc = accuracy(net, eval_data) if eval_data is not None else None
                record = EpochRecord(epoch, total_loss / seen, correct / seen, eval_acc, time.perf_counter() - start)
                history.append(record)
            if progress is not None:
                progress(TrainProgress(epoch, cfg.epochs, step, steps, float(loss.detach()), record))
    net.eval()
    return TrainResult(net, history)


def train_from_seed(
    architecture: str,
    options: dict[str, Any],
    data: DataLike,
    config: TrainConfig | None = None,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    eval_data: DataLike | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Builds registered model ``architecture`` from ``seed`` and trains it, every random
    draw (initial weights, shuffling, dropout) coming from ``seed``: the one way the CLI's
    ``train`` and the evaluation harness train, so that both give the same model.

    The global generator is only used inside :func:`advparams._rng.isolated_seed`, so the
    caller's random state is unchanged.
    """
    from advparams.models import build_model

    dev = torch.device(device)
    model = build_model(architecture, options, seed=seed).to(dev)
    with isolated_seed(seed, devices=[dev] if dev.type == "cuda" else []):  # dropout and in-model randomness
        return train(
            model, data, config, generator=torch.Generator().manual_seed(seed), eval_data=eval_data, progress=progress
        )
