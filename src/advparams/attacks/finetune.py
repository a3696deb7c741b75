"""Fine-tuning attack, always paired with training from scratch on the same samples.

A thief who holds the locked model and a fraction of the training data fine-tunes all
layers. What matters is the advantage over training the same architecture from scratch
on exactly the same samples with the same budget. A lock is worth something only if
fine-tuning it gains nothing over that.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from advparams.attacks.base import ATTACKS, Attack, Attacked, attacker_indices, reinitialised, require_data
from advparams.data.base import DataLike, InMemoryDataset, all_labels, gather
from advparams.keys.key import Key
from advparams.registry import validated
from advparams.training import TrainConfig, train


@dataclass(frozen=True)
@validated
class FineTuneConfig:
    """Settings of :class:`FineTune` (the attacker's resources).

    Attributes:
        data_fraction: share of the given training data the attacker holds, in (0, 1].
        epochs: training epochs, for fine-tuning and for the scratch baseline alike.
        lr: learning rate.
        optimizer: ``"adam"`` or ``"sgd"``.
        batch_size: samples per step.
        scratch: also train the same architecture from scratch on the same samples.
        seed: seeds the choice of samples, the scratch initialisation and the shuffling.
    """

    data_fraction: float = 0.05
    epochs: int = 5
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    batch_size: int = 128
    scratch: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.data_fraction <= 1.0:
            raise ValueError(f"data_fraction must be in (0, 1], got {self.data_fraction}")
        TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer)


def _all_trainable(model: nn.Module) -> nn.Module:
    out = copy.deepcopy(model)
    for p in out.parameters():
        if p.is_floating_point():
            p.requires_grad_(True)
    return out


@ATTACKS.register("finetune")
class FineTune(Attack[FineTuneConfig]):
    """Fine-tuning of all layers on a fraction of the training data, against a scratch baseline."""

    name = "finetune"
    attacks_copies = True
    scratch_baseline = True
    Config = FineTuneConfig
    tiny = {"epochs": 1, "data_fraction": 0.2}

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Fine-tunes a copy of ``model``; ``baselines["scratch"]`` saw exactly the same samples."""
        data = require_data(data, self.name)
        cfg = self.config
        gen = generator
        idx = attacker_indices(all_labels(data), cfg.data_fraction, gen)
        subset: DataLike = data.subset(idx) if isinstance(data, InMemoryDataset) else gather(data, idx)
        tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, optimizer=cfg.optimizer)
        # Both runs shuffle with generators seeded alike, so they see the same batches.
        shuffle_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        # All layers are trained, whatever requires_grad flags the given model carries;
        # the scratch model likewise.
        start_from = _all_trainable(model)
        tuned = train(start_from, subset, tcfg, generator=torch.Generator().manual_seed(shuffle_seed)).model
        baselines = {}
        if cfg.scratch:
            fresh = reinitialised(start_from, shuffle_seed)
            baselines["scratch"] = train(
                fresh, subset, tcfg, generator=torch.Generator().manual_seed(shuffle_seed)
            ).model
        info = {"samples": idx.tolist(), "num_samples": int(idx.numel()), "train": asdict(tcfg)}
        return Attacked(tuned, baselines, info)
