"""Model extraction by distillation: a fresh network trained on the stolen model's answers.

The thief queries the stolen model with their own data and trains a freshly initialised
network of the same architecture on its answers (Hinton et al. 2015 for soft labels;
hard labels are what a label-only API gives). Nothing of the stolen weights is kept, so
this is the attack that a fingerprint of the *function* must survive and one of the
*weights* cannot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from advparams.attacks.base import ATTACKS, Attack, Attacked, attacker_indices, reinitialised, require_data
from advparams.data.base import DataLike, ImageDataset, all_labels, iter_batches
from advparams.devices import model_device, model_float_dtype
from advparams.errors import AdvParamsError
from advparams.keys.key import Key
from advparams.metrics.accuracy import logits_of
from advparams.registry import validated
from advparams.training import TrainConfig, make_optimizer, train


@dataclass(frozen=True)
@validated
class DistillConfig:
    """Settings of :class:`Distill`.

    Attributes:
        data_fraction: share of the training data the thief holds and queries.
        labels: ``"hard"`` (the stolen model's top label) or ``"soft"`` (its
            probabilities at ``temperature``, matched by KL divergence).
        temperature: softening of ``"soft"`` labels.
        epochs: passes over the thief's data.
        lr: learning rate.
        optimizer: ``"adam"`` or ``"sgd"``.
        batch_size: samples per step.
        seed: seeds the samples, the fresh initialisation and the shuffling.
    """

    data_fraction: float = 0.1
    labels: Literal["hard", "soft"] = "hard"
    temperature: float = 4.0
    epochs: int = 10
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.data_fraction <= 1.0:
            raise ValueError(f"data_fraction must be in (0, 1], got {self.data_fraction}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer)


def answers(model: nn.Module, data: ImageDataset, *, batch_size: int = 512) -> torch.Tensor:
    """The stolen model's class scores for every sample of ``data`` (on CPU, eval mode)."""
    device, dtype = model_device(model), model_float_dtype(model)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat(
                [
                    logits_of(model, x.to(device=device, dtype=dtype)).float().cpu()
                    for x, _ in iter_batches(data, batch_size)
                ]
            )
    finally:
        model.train(was)


@ATTACKS.register("distill")
class Distill(Attack[DistillConfig]):
    """Extraction by distillation into a fresh network of the same architecture."""

    name = "distill"
    Config = DistillConfig
    tiny = {"epochs": 1, "data_fraction": 0.5}

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Trains a fresh copy of ``model``'s architecture on ``model``'s answers."""
        data = require_data(data, self.name)
        if not isinstance(data, ImageDataset):
            raise AdvParamsError("the distill attack needs an ImageDataset")
        cfg = self.config
        idx = attacker_indices(all_labels(data), cfg.data_fraction, generator)
        mine = data.subset(idx)
        scores = answers(model, mine)
        init_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        shuffle = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        student = reinitialised(model, init_seed)
        for p in student.parameters():
            if p.is_floating_point():
                p.requires_grad_(True)
        tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, optimizer=cfg.optimizer)
        if cfg.labels == "hard":
            relabelled = ImageDataset(
                mine.images, scores.argmax(1), mean=mine.mean, std=mine.std, num_classes=scores.shape[1], name=mine.name
            )
            student = train(student, relabelled, tcfg, generator=shuffle).model
        else:
            student = _soft(student, mine, scores, tcfg, cfg.temperature, shuffle)
        info = {"num_samples": int(idx.numel()), "labels": cfg.labels, "train": asdict(tcfg)}
        return Attacked(student.eval(), {}, info)


def _soft(
    student: nn.Module, data: ImageDataset, scores: torch.Tensor, cfg: TrainConfig, t: float, gen: torch.Generator
) -> nn.Module:
    """Trains ``student`` to match ``softmax(scores / t)`` by KL divergence (times t^2)."""
    device, dtype = model_device(student), model_float_dtype(student)
    opt = make_optimizer(student, cfg)
    target = F.softmax(scores / t, dim=1)
    n = len(data)
    for _ in range(cfg.epochs):
        student.train()
        for b in torch.randperm(n, generator=gen).split(cfg.batch_size):
            x, _ = data.tensors(b)
            out = logits_of(student, x.to(device=device, dtype=dtype))
            loss = (
                F.kl_div(F.log_softmax(out / t, dim=1), target[b].to(device, out.dtype), reduction="batchmean") * t * t
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return student


__all__ = ["Distill", "DistillConfig", "answers"]
