"""Random perturbation: the floor every lock must beat.

``max_params`` scalars are drawn uniformly from all candidate weights, and each is set
to a value drawn uniformly within its tensor's original ``[min, max]`` (shrunk by the
margin), the same range AdvParams may use. No gradient, no data beyond measuring the
lock samples. If a random lock of the same size were as good as AdvParams, the
adversarial search would be buying nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from advparams.registry import validated
from advparams.schemes.base import SCHEMES, LockProgress
from advparams.schemes.locking import (
    LockSetup,
    ParameterScheme,
    Search,
    check_lock_options,
    tensor_bounds,
)


@dataclass(frozen=True)
@validated
class RandomPerturbationConfig:
    """Settings of :class:`RandomPerturbation`.

    Attributes:
        max_params: how many scalars to perturb (the key's size).
        margin: new values stay at least ``margin * range`` inside the tensor's original
            ``[min, max]``, as in AdvParams.
        include: ``fnmatch`` patterns of parameter names to consider; empty: all.
        exclude: patterns of parameter names to leave alone.
        include_1d: also consider 1-d parameters (biases, normalisation parameters).
        num_samples: lock samples on which the locked accuracy is reported.
        batch_size: samples per forward pass.
        seed: seeds positions, values and samples when no generator is passed.
    """

    max_params: int = 10
    margin: float = 0.02
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_1d: bool = False
    num_samples: int = 1000
    batch_size: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_params < 1:
            raise ValueError(f"max_params must be at least 1, got {self.max_params}")
        if not 0.0 <= self.margin < 0.5:
            raise ValueError(f"margin must be in [0, 0.5), got {self.margin}")
        check_lock_options(self)


@SCHEMES.register("random")
class RandomPerturbation(ParameterScheme[RandomPerturbationConfig]):
    """Random perturbation of ``max_params`` weights within their layer's range (baseline floor)."""

    name = "random"
    Config = RandomPerturbationConfig
    aims_at_target = False

    def search(self, model: nn.Module, setup: LockSetup, progress: Callable[[LockProgress], None] | None) -> Search:
        """Sets ``max_params`` random weights to random values within their range."""
        cfg = self.config
        work, cands, samples, gen = setup.work, setup.candidates, setup.samples, setup.generator
        _, before = samples.loss_accuracy(work)

        names = list(cands)
        sizes = torch.tensor([cands[n].numel() for n in names])
        total = int(sizes.sum())
        picks = torch.randperm(total, generator=gen)[: min(cfg.max_params, total)]
        offsets = torch.cumsum(sizes, 0) - sizes
        bounds = tensor_bounds(cands, cfg.margin)
        positions: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for t, name in enumerate(names):
                inside = picks[(picks >= offsets[t]) & (picks < offsets[t] + sizes[t])] - offsets[t]
                if inside.numel() == 0:
                    continue
                lo, hi, _ = bounds[name]
                values = lo + (hi - lo) * torch.rand(inside.numel(), generator=gen)
                flat = cands[name].data.view(-1)
                flat[inside.to(flat.device)] = values.to(flat.device)
                positions[name] = inside.sort().values
        _, after = samples.loss_accuracy(work)
        if progress is not None:
            progress(LockProgress(1, int(picks.numel()), cfg.max_params, after, setup.target, 0.0, before))
        return Search(
            positions,
            accuracy_before=before,
            accuracy_after=after,
            rounds=0,
            stopped="budget",
        )
