"""Adaptive attack by statistical detection: find the weights a lock is likely to have
touched and reset them.

An attacker who knows AdvParams knows that locked values are pushed towards their
tensor's extremes. Two detectors, per weight tensor:

* ``"extreme"``: values within ``extreme_fraction`` of the tensor's range from its min
  or max;
* ``"zscore"``: values whose z-score ``|w - mean| / std`` exceeds ``z_threshold``.

Suspects are reset to the median of the tensor's other values, or to zero, or
re-optimised (only they are trained, on the attacker's samples). The suspects
are returned in ``info["suspects"]`` (``{tensor name: flat indices}``) so that the harness
can score detection against the true key (:func:`advparams.metrics.detection_scores`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from advparams.attacks._reoptimise import attacker_batch, reoptimise_
from advparams.attacks.base import ATTACKS, Attack, Attacked, require_data
from advparams.attacks.retrace import reset_values_
from advparams.data.base import DataLike
from advparams.devices import model_device
from advparams.keys.key import Key
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class OutlierResetConfig:
    """Settings of :class:`OutlierReset`.

    Attributes:
        method: ``"extreme"`` or ``"zscore"`` (see the module docstring).
        extreme_fraction: for ``"extreme"``, the band at each end, as a fraction of the range.
        z_threshold: for ``"zscore"``, the z-score above which a value is suspect.
        reset: ``"median"`` (of the tensor's other values), ``"zero"``, or
            ``"reoptimise"`` (train only the suspects on the attacker's samples).
        num_samples: for ``"reoptimise"``, the attacker's samples (class-balanced).
        steps: for ``"reoptimise"``, optimiser steps (Adam).
        lr: for ``"reoptimise"``, the learning rate.
        seed: seeds the attacker's samples when no generator is passed.
    """

    method: Literal["extreme", "zscore"] = "zscore"
    extreme_fraction: float = 0.05
    z_threshold: float = 3.0
    reset: Literal["median", "zero", "reoptimise"] = "median"
    num_samples: int = 256
    steps: int = 100
    lr: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("extreme", "zscore"):
            raise ValueError(f"method must be 'extreme' or 'zscore', got {self.method!r}")
        if not 0.0 < self.extreme_fraction < 0.5:
            raise ValueError(f"extreme_fraction must be in (0, 0.5), got {self.extreme_fraction}")
        if self.z_threshold <= 0:
            raise ValueError(f"z_threshold must be positive, got {self.z_threshold}")
        if self.reset not in ("median", "zero", "reoptimise"):
            raise ValueError(f"reset must be 'median', 'zero' or 'reoptimise', got {self.reset!r}")
        if self.num_samples < 1 or self.steps < 0 or self.lr <= 0:
            raise ValueError("num_samples must be at least 1, steps non-negative and lr positive")


def find_suspects(values: torch.Tensor, config: OutlierResetConfig) -> torch.Tensor:
    """Flat indices of the suspect values of one tensor, sorted."""
    flat = values.detach().reshape(-1).float()
    if config.method == "extreme":
        lo, hi = float(flat.min()), float(flat.max())
        band = config.extreme_fraction * (hi - lo)
        mask = (flat <= lo + band) | (flat >= hi - band)
    else:
        std = float(flat.std())
        mask = (
            (flat - flat.mean()).abs() > config.z_threshold * std
            if std > 0
            else torch.zeros_like(flat, dtype=torch.bool)
        )
    return torch.nonzero(mask).reshape(-1)


@ATTACKS.register("outlier-reset")
class OutlierReset(Attack[OutlierResetConfig]):
    """Adaptive attack: statistical detection of locked weights, then reset (advparams' threat model)."""

    name = "outlier-reset"
    reports_suspects = True
    Config = OutlierResetConfig
    tiny = {"reset": "reoptimise", "steps": 5}

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Resets (or re-optimises) the suspects of a copy of ``model``.

        Only ``reset="reoptimise"`` uses ``data``.
        """
        cfg = self.config
        suspects: dict[str, torch.Tensor] = {}
        for name, p in model.named_parameters():
            if not p.is_floating_point() or p.dim() < 2 or p.numel() < 2:
                continue
            idx = find_suspects(p, cfg)
            if idx.numel():
                suspects[name] = idx.cpu()
        info: dict[str, object] = {}
        if cfg.reset == "reoptimise":
            dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
            x, y = attacker_batch(require_data(data, self.name), cfg.num_samples, generator, model_device(model))
            out = copy.deepcopy(model).float()
            reoptimise_(out, suspects, x, y, steps=cfg.steps, lr=cfg.lr)
            out = out.to(dtype)
            out.train(model.training)
            info["num_samples"] = int(y.shape[0])
        else:
            out = copy.deepcopy(model)
            reset_values_(out, suspects, cfg.reset)
        info["suspects"] = {n: i.tolist() for n, i in suspects.items()}
        info["num_suspects"] = sum(int(i.numel()) for i in suspects.values())
        return Attacked(out, info=info)
