"""Adaptive attack by statistical detection: find the weights a lock is likely to have
touched and reset them.

An attacker who knows AdvParams knows that locked values are pushed towards their
tensor's extremes. Two detectors, per weight tensor:

* ``"extreme"``: values within ``extreme_fraction`` of the tensor's range from its min
  or max;
* ``"zscore"``: values whose z-score ``|w - mean| / std`` exceeds ``z_threshold``.

Suspects are reset to the median of the tensor's other values, or to zero. The suspects
are returned in ``info["suspects"]`` (``{tensor name: flat indices}``) so that the harness
can score detection against the true key (:func:`advparams.metrics.detection_scores`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from advparams.attacks.base import ATTACKS, Attack, AttackResult
from advparams.data.base import DataLike


@dataclass(frozen=True)
class OutlierResetConfig:
    """Settings of :class:`OutlierReset`.

    Attributes:
        method: ``"extreme"`` or ``"zscore"`` (see the module docstring).
        extreme_fraction: for ``"extreme"``, the band at each end, as a fraction of the range.
        z_threshold: for ``"zscore"``, the z-score above which a value is suspect.
        reset: ``"median"`` (of the tensor's other values) or ``"zero"``.
    """

    method: Literal["extreme", "zscore"] = "zscore"
    extreme_fraction: float = 0.05
    z_threshold: float = 3.0
    reset: Literal["median", "zero"] = "median"

    def __post_init__(self) -> None:
        if self.method not in ("extreme", "zscore"):
            raise ValueError(f"method must be 'extreme' or 'zscore', got {self.method!r}")
        if not 0.0 < self.extreme_fraction < 0.5:
            raise ValueError(f"extreme_fraction must be in (0, 0.5), got {self.extreme_fraction}")
        if self.z_threshold <= 0:
            raise ValueError(f"z_threshold must be positive, got {self.z_threshold}")
        if self.reset not in ("median", "zero"):
            raise ValueError(f"reset must be 'median' or 'zero', got {self.reset!r}")


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
    Config = OutlierResetConfig

    def run(self, model: nn.Module, data: DataLike, *, generator: torch.Generator | None = None) -> AttackResult:
        """Resets the suspects of a copy of ``model``; needs no data."""
        del data, generator
        start = time.perf_counter()
        cfg = self.config
        out = copy.deepcopy(model)
        suspects: dict[str, list[int]] = {}
        with torch.no_grad():
            for name, p in out.named_parameters():
                if not p.is_floating_point() or p.dim() < 2 or p.numel() < 2:
                    continue
                idx = find_suspects(p, cfg)
                if idx.numel() == 0:
                    continue
                flat = p.detach().reshape(-1).clone()
                if cfg.reset == "median":
                    keep = torch.ones_like(flat, dtype=torch.bool)
                    keep[idx] = False
                    fill = flat[keep].median() if bool(keep.any()) else flat.median()
                else:
                    fill = torch.zeros((), dtype=flat.dtype)
                flat[idx] = fill.to(flat.dtype)
                p.copy_(flat.view_as(p))
                suspects[name] = idx.tolist()
        info = {"suspects": suspects, "num_suspects": sum(len(v) for v in suspects.values())}
        return AttackResult(self.name, out, info=info, seconds=time.perf_counter() - start)
