"""SFGE-style lock (after Cai et al., sparse fast-gradient-sign weight encryption for
NVM/CIM accelerators, ~2020): one gradient step, no search.

In every candidate weight tensor, the ``per_layer`` weights with the largest
``|dL/dw|`` on the lock samples are moved once by ``epsilon * range * sign(dL/dw)``
(the fast gradient sign step applied to weights) and clipped to the tensor's original
``[min, max]`` shrunk by the margin. The paper reports about 20 weights per layer on
ResNet-101 [paper]; the step size is not known and ``epsilon`` is ours [inferred]. This
is the closest ancestor of AdvParams: the same gradient signal, but one shot, per layer,
without re-computing the gradient after each change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

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
class SFGEConfig:
    """Settings of :class:`SFGE`.

    Attributes:
        per_layer: weights changed in each candidate tensor (about 20 in the paper).
        epsilon: the sign step, as a fraction of the tensor's original range.
        margin: values stay at least ``margin * range`` inside the original ``[min, max]``.
        objective: the loss whose gradient is followed (see :class:`AdvParamsConfig`).
        loss_cap: per-sample cap of ``"capped-ce"``.
        include: ``fnmatch`` patterns of parameter names to consider; empty: all.
        exclude: patterns of parameter names to leave alone.
        include_1d: also consider 1-d parameters.
        num_samples: lock samples (class-balanced).
        batch_size: samples per forward pass.
        seed: seeds the lock samples when no generator is passed.
    """

    per_layer: int = 20
    epsilon: float = 0.5
    margin: float = 0.02
    objective: Literal["ce", "capped-ce"] = "ce"
    loss_cap: float = 4.6
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_1d: bool = False
    num_samples: int = 1000
    batch_size: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_layer < 1:
            raise ValueError(f"per_layer must be at least 1, got {self.per_layer}")
        if not 0.0 < self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in (0, 1], got {self.epsilon}")
        if not 0.0 <= self.margin < 0.5:
            raise ValueError(f"margin must be in [0, 0.5), got {self.margin}")
        if self.objective not in ("ce", "capped-ce"):
            raise ValueError(f"objective must be 'ce' or 'capped-ce', got {self.objective!r}")
        check_lock_options(self)


@SCHEMES.register("sfge")
class SFGE(ParameterScheme[SFGEConfig]):
    """SFGE (Cai et al., ~2020): one gradient-sign step on the top-|gradient| weights of each layer."""

    name = "sfge"
    Config = SFGEConfig
    aims_at_target = False
    budget_option = "per_layer"

    def search(self, model: nn.Module, setup: LockSetup, progress: Callable[[LockProgress], None] | None) -> Search:
        """One gradient-sign step on the top-|g| weights of each tensor."""
        cfg = self.config
        work, cands, samples = setup.work, setup.candidates, setup.samples
        _, before = samples.loss_accuracy(work)
        grads = samples.gradients(work, cands, cfg.objective, cfg.loss_cap)
        bounds = tensor_bounds(cands, cfg.margin)
        positions: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, p in cands.items():
                g = grads[name].reshape(-1)
                k = min(cfg.per_layer, g.numel())
                idx = g.abs().topk(k).indices
                idx = idx[g[idx] != 0]
                if idx.numel() == 0:
                    continue
                lo, hi, r = bounds[name]
                flat = p.data.view(-1)
                flat[idx] = (flat[idx] + cfg.epsilon * r * g[idx].sign()).clamp(lo, hi)
                positions[name] = idx.sort().values
        loss, after = samples.loss_accuracy(work, cfg.objective, cfg.loss_cap)
        if progress is not None:
            changed = sum(int(i.numel()) for i in positions.values())
            progress(LockProgress(1, changed, cfg.per_layer * len(cands), after, setup.target, loss, before))
        return Search(
            positions,
            accuracy_before=before,
            accuracy_after=after,
            rounds=1,
            stopped="budget",
        )
