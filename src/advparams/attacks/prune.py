"""Magnitude pruning (Han et al., "Learning both Weights and Connections for Efficient
Neural Networks", NeurIPS 2015): zero the weights of smallest absolute value.

``scope="layer"`` zeroes ``floor(rate * n)`` weights of each candidate tensor;
``scope="global"`` zeroes ``floor(rate * N)`` weights over all candidate tensors
together, ranked by magnitude. Ties are broken by position, so the count is exact.
Candidates are the weight tensors (``dim >= 2``), as in the lock.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from advparams.attacks.base import ATTACKS, Attack, Attacked
from advparams.data.base import DataLike
from advparams.keys.key import Key
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class PruneConfig:
    """Settings of :class:`Prune`.

    Attributes:
        rate: fraction of candidate weights zeroed, in [0, 1).
        scope: ``"layer"`` (the rate in every tensor) or ``"global"`` (over all tensors).
        include_1d: also prune 1-d parameters (biases, normalisation parameters).
    """

    rate: float = 0.3
    scope: Literal["layer", "global"] = "layer"
    include_1d: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {self.rate}")
        if self.scope not in ("layer", "global"):
            raise ValueError(f"scope must be 'layer' or 'global', got {self.scope!r}")


def smallest_magnitude_mask(values: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean mask of the ``count`` entries of smallest ``|value|`` (ties: lower index first)."""
    flat = values.detach().reshape(-1)
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if count > 0:
        order = torch.argsort(flat.abs(), stable=True)
        mask[order[:count]] = True
    return mask.view_as(values)


def magnitude_prune(model: nn.Module, rate: float, scope: str = "layer", include_1d: bool = False) -> nn.Module:
    """A copy of ``model`` with the smallest-magnitude weights zeroed (see the module docstring)."""
    pruned = copy.deepcopy(model)
    params = [p for p in pruned.parameters() if p.is_floating_point() and (p.dim() >= 2 or include_1d)]
    with torch.no_grad():
        if scope == "layer":
            for p in params:
                p.masked_fill_(smallest_magnitude_mask(p, int(rate * p.numel())), 0.0)
        else:
            flat = torch.cat([p.detach().reshape(-1).float() for p in params])
            mask = smallest_magnitude_mask(flat, int(rate * flat.numel()))
            start = 0
            for p in params:
                p.masked_fill_(mask[start : start + p.numel()].view_as(p), 0.0)
                start += p.numel()
    return pruned


@ATTACKS.register("prune")
class Prune(Attack[PruneConfig]):
    """Magnitude pruning (Han et al., NeurIPS 2015)."""

    name = "prune"
    attacks_copies = True
    Config = PruneConfig
    uses_data = False

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Prunes a copy of ``model``; needs no data (``data`` is ignored)."""
        cfg = self.config
        pruned = magnitude_prune(model, cfg.rate, cfg.scope, cfg.include_1d)
        zeros = sum(int((p == 0).sum()) for p in pruned.parameters() if p.dim() >= 2 or cfg.include_1d)
        return Attacked(pruned, info={"zero_weights": zeros})
