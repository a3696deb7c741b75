"""Adversarial sign flips: a lock that moves no value out of its layer's distribution
(ours; a candidate design for hardened locking, ``docs/hardened.md``).

Every locked value is an original value with its sign flipped, ``w -> -w``. Magnitudes
are untouched, so magnitude-based detectors (extremes, z-scores of ``|w|``, clipping,
pruning) see exactly the original magnitudes, and for roughly symmetric weight
distributions the per-tensor value distribution barely moves. The flips are chosen
greedily by their first-order loss gain ``g * (-2 w)`` on the lock samples, ``chunk``
at a time with the gradient recomputed after each chunk, until the lock samples reach
the target accuracy (or, with ``target_accuracy: 0``, the budget is spent). Unlocking is
exact: negation is exact in floating point, and the key holds the original values
anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from advparams.registry import validated
from advparams.schemes.base import SCHEMES, LockProgress
from advparams.schemes.locking import LockSetup, ParameterScheme, Search, check_lock_options


@dataclass(frozen=True)
@validated
class SignFlipConfig:
    """Settings of :class:`SignFlip`.

    Attributes:
        max_params: budget: the most values flipped (the key's size).
        chunk: flips per round (the gradient is recomputed between rounds).
        target_accuracy: stop once the lock samples' accuracy is at most this;
            ``None``: chance + 2 points; ``0``: spend the whole budget.
        objective: the loss raised (see :class:`AdvParamsConfig`).
        loss_cap: per-sample cap of ``"capped-ce"``.
        include: ``fnmatch`` patterns of parameter names to consider; empty: all.
        exclude: patterns of parameter names to leave alone.
        include_1d: also flip 1-d parameters (biases, normalisation parameters).
        num_samples: lock samples (class-balanced).
        batch_size: samples per forward pass.
        seed: seeds the lock samples when no generator is passed.
    """

    max_params: int = 100
    chunk: int = 10
    target_accuracy: float | None = None
    objective: Literal["ce", "capped-ce"] = "capped-ce"
    loss_cap: float = 4.6
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_1d: bool = False
    num_samples: int = 1000
    batch_size: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_params < 1 or self.chunk < 1:
            raise ValueError("max_params and chunk must be at least 1")
        if self.target_accuracy is not None and not 0.0 <= self.target_accuracy <= 1.0:
            raise ValueError(f"target_accuracy must be in [0, 1], got {self.target_accuracy}")
        if self.objective not in ("ce", "capped-ce"):
            raise ValueError(f"objective must be 'ce' or 'capped-ce', got {self.objective!r}")
        check_lock_options(self)


def flip_gains(grad: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """First-order loss change of flipping each value's sign: ``g * (-2 w)``.

    Example:
        >>> flip_gains(torch.tensor([1.0, -2.0, 0.5]), torch.tensor([-1.0, 1.0, 2.0]))
        tensor([ 2.,  4., -2.])
    """
    return grad * (-2.0 * value)


@SCHEMES.register("signflip")
class SignFlip(ParameterScheme[SignFlipConfig]):
    """Adversarial sign flips (ours): values keep their magnitude, the loss gain picks them."""

    name = "signflip"
    Config = SignFlipConfig

    def search(self, model: nn.Module, setup: LockSetup, progress: Callable[[LockProgress], None] | None) -> Search:
        """Flips the signs of greedily chosen weights."""
        cfg = self.config
        work, cands, samples, target = setup.work, setup.candidates, setup.samples, setup.target
        loss, before = samples.loss_accuracy(work, cfg.objective, cfg.loss_cap)
        chosen = {n: torch.zeros(p.numel(), dtype=torch.bool, device=p.device) for n, p in cands.items()}
        flipped, rounds, acc, stopped = 0, 0, before, "budget"
        while flipped < cfg.max_params:
            if acc <= target:
                stopped = "target"
                break
            rounds += 1
            grads = samples.gradients(work, cands, cfg.objective, cfg.loss_cap)
            names = list(cands)
            scores = [
                flip_gains(grads[n], cands[n].detach()).reshape(-1).masked_fill(chosen[n], float("-inf")) for n in names
            ]
            flat = torch.cat(scores)
            top = flat.topk(min(cfg.chunk, cfg.max_params - flipped))
            keep = top.indices[top.values > 0]  # only flips that raise the loss (first order)
            if keep.numel() == 0:
                stopped = "exhausted"
                break
            offset = 0
            with torch.no_grad():
                for n, s in zip(names, scores, strict=True):
                    idx = keep[(keep >= offset) & (keep < offset + s.numel())] - offset
                    if idx.numel():
                        cands[n].data.view(-1)[idx] *= -1
                        chosen[n][idx] = True
                    offset += s.numel()
            flipped += int(keep.numel())
            loss, acc = samples.loss_accuracy(work, cfg.objective, cfg.loss_cap)
            if progress is not None:
                progress(LockProgress(rounds, flipped, cfg.max_params, acc, target, loss, before))
        if acc <= target:
            stopped = "target"
        positions = {n: torch.nonzero(m).reshape(-1) for n, m in chosen.items() if bool(m.any())}
        return Search(
            positions,
            accuracy_before=before,
            accuracy_after=acc,
            rounds=rounds,
            stopped=stopped,
        )
