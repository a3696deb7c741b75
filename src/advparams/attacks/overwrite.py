"""Watermark overwriting: the thief embeds a watermark of their own, with their own data,
hoping to drown the owner's (Zhang et al. 2018 and Sun et al. 2021 evaluate it)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advparams.attacks.base import ATTACKS, Attack, Attacked, attacker_indices, require_data
from advparams.data.base import DataLike, ImageDataset, all_labels
from advparams.errors import AdvParamsError
from advparams.keys.key import Key
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class OverwriteConfig:
    """Settings of :class:`Overwrite`.

    Attributes:
        watermark: the registered watermark the attacker embeds.
        data_fraction: share of the training data the attacker holds.
        num_keys: the attacker's key samples.
        epochs: passes over the attacker's data.
        lr: learning rate.
        seed: seeds the attacker's samples and watermark.
    """

    watermark: str = "zhang-noise"
    data_fraction: float = 0.1
    num_keys: int = 100
    epochs: int = 5
    lr: float = 5e-4
    seed: int = 0

    def __post_init__(self) -> None:
        from advparams.watermarks import WATERMARKS

        WATERMARKS.get(self.watermark)
        if not 0.0 < self.data_fraction <= 1.0:
            raise ValueError(f"data_fraction must be in (0, 1], got {self.data_fraction}")
        if self.num_keys < 1 or self.epochs < 1 or self.lr <= 0:
            raise ValueError("num_keys and epochs must be at least 1 and lr positive")


@ATTACKS.register("overwrite")
class Overwrite(Attack[OverwriteConfig]):
    """Watermark overwriting: embed the attacker's own watermark on the attacker's data."""

    name = "overwrite"
    Config = OverwriteConfig
    tiny = {"num_keys": 10, "epochs": 1}

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Embeds the attacker's watermark into a copy of ``model``."""
        from advparams.watermarks import WATERMARKS

        data = require_data(data, self.name)
        if not isinstance(data, ImageDataset):
            raise AdvParamsError("the overwrite attack needs an ImageDataset (key images are built from images)")
        cfg = self.config
        idx = attacker_indices(all_labels(data), cfg.data_fraction, generator)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        wm = WATERMARKS.build(
            cfg.watermark, {"num_keys": cfg.num_keys, "epochs": cfg.epochs, "lr": cfg.lr, "seed": seed}
        )
        out = wm.embed(model, data.subset(idx), generator=torch.Generator().manual_seed(seed))
        info = {"num_samples": int(idx.numel()), "attacker_watermark": out.key.score(out.model), **out.info}
        return Attacked(out.model, {}, info)
