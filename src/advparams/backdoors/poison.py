"""The poisoning plan every backdoor shares: how many training samples, which ones (never
one already of its sub-trigger's target class), with which sub-trigger and label."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from advparams.backdoors.triggers import Trigger
from advparams.errors import AdvParamsError


@dataclass(frozen=True)
class PoisonPlan:
    """Which training samples are poisoned, with which sub-trigger and label.

    Attributes:
        indices: indices into the training set ``[P]`` (distinct).
        which: the sub-trigger of each ``[P]``.
        labels: the label each is given (its sub-trigger's target) ``[P]``.
    """

    indices: torch.Tensor
    which: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def poison_count(num_samples: int, rate: float) -> int:
    """``round(rate * num_samples)``, at least 1.

    Example:
        >>> poison_count(60000, 0.005), poison_count(10, 0.01)
        (300, 1)
    """
    return max(1, round(rate * num_samples))


def poison_plan(labels: torch.Tensor, targets: tuple[int, ...], count: int, generator: torch.Generator) -> PoisonPlan:
    """``count`` distinct samples to poison, split as evenly as possible over the
    sub-triggers (the first ones get the remainder); sub-trigger ``i`` takes samples whose
    label is not ``targets[i]``.

    Raises:
        AdvParamsError: too few samples outside a target class.
    """
    n = len(targets)
    taken = torch.zeros(labels.shape[0], dtype=torch.bool)
    idx, which, new = [], [], []
    for i, target in enumerate(targets):
        want = count // n + (1 if i < count % n else 0)
        pool = torch.nonzero((labels != target) & ~taken).reshape(-1)
        if pool.numel() < want:
            raise AdvParamsError(
                f"only {pool.numel()} training samples are outside target class {target}; {want} are to be poisoned"
            )
        pick = pool[torch.randperm(pool.numel(), generator=generator)[:want]]
        taken[pick] = True
        idx.append(pick)
        which.append(torch.full((want,), i, dtype=torch.long))
        new.append(torch.full((want,), target, dtype=torch.long))
    return PoisonPlan(torch.cat(idx), torch.cat(which), torch.cat(new))


def apply_each(trigger: Trigger, images: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """``images[k]`` carrying sub-trigger ``which[k]``, for every ``k``."""
    out = images.clone()
    for i in range(len(trigger)):
        sel = which == i
        if bool(sel.any()):
            out[sel] = trigger.apply(images[sel], i)
    return out


__all__ = ["PoisonPlan", "apply_each", "poison_count", "poison_plan"]
