"""Clipping weights to per-layer percentiles (the norm-clipping attack NNSplitter, Zhou et al.,
ICML 2023, is evaluated against): values beyond a tensor's ``low``/``high`` percentiles are
pulled back to them, undoing perturbations that sit at a layer's extremes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from advparams.attacks.base import ATTACKS, Attack, Attacked
from advparams.data.base import DataLike
from advparams.keys.key import Key
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class ClipConfig:
    """Settings of :class:`Clip`.

    Attributes:
        low: lower percentile, in [0, 50).
        high: upper percentile, in (50, 100].
        include_1d: also clip 1-d parameters.
    """

    low: float = 1.0
    high: float = 99.0
    include_1d: bool = False

    def __post_init__(self) -> None:
        if not (0.0 <= self.low < 50.0 < self.high <= 100.0):
            raise ValueError(f"need 0 <= low < 50 < high <= 100, got low={self.low}, high={self.high}")


def clip_to_percentiles(model: nn.Module, low: float, high: float, include_1d: bool = False) -> nn.Module:
    """A copy of ``model`` with every weight tensor clamped to its own [low, high] percentiles."""
    clipped = copy.deepcopy(model)
    with torch.no_grad():
        for p in clipped.parameters():
            if not p.is_floating_point() or (p.dim() < 2 and not include_1d) or p.numel() < 2:
                continue
            flat = p.detach().reshape(-1).float()
            q = torch.quantile(flat, torch.tensor([low / 100.0, high / 100.0], device=flat.device))
            p.copy_(p.clamp(min=float(q[0]), max=float(q[1])))
    return clipped


@ATTACKS.register("clip")
class Clip(Attack[ClipConfig]):
    """Clipping each weight tensor to its own percentiles (NNSplitter's clipping attack, ICML 2023)."""

    name = "clip"
    Config = ClipConfig
    uses_data = False

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Clips a copy of ``model``; needs no data."""
        cfg = self.config
        return Attacked(clip_to_percentiles(model, cfg.low, cfg.high, cfg.include_1d))
