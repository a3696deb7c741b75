"""NNSplitter-style weight obfuscation without its RL controller (after Zhou et al.,
"NNSplitter: An Active Defense Solution for DNN Model via Automated Weight
Obfuscation", ICML 2023).

NNSplitter lets a REINFORCE controller choose filters, then optimises the weights of
those filters whose values lie within a window ``[B - eps, B + eps]`` so as to destroy
accuracy, each kept within its layer's ``[min_w, max_w]`` so that nothing stands out
[paper: arguments; inferred: semantics]. Here the controller is replaced by a ranking
of output filters (rows of a weight tensor along dim 0) by first-order importance
``|sum(g * w)|`` on the lock samples (the Taylor criterion of Molchanov et al., ICLR
2017), and the
window is set per tensor in units of its standard deviation around its mean. The
selected values are then optimised together by signed gradient ascent on the lock
objective, clipped to the layer range after each step, until the lock samples' accuracy
reaches the target or the iterations run out.
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
class NNSplitterConfig:
    """Settings of :class:`NNSplitter`.

    Attributes:
        num_filters: output filters chosen over all candidate tensors.
        window_center: B, in standard deviations from the tensor's mean.
        window_width: eps, in standard deviations: weights with ``|w - B| <= eps`` in a
            chosen filter are optimised.
        max_params: at most this many weights optimised (largest ``|g|`` first).
        iterations: optimisation steps.
        step: signed step per iteration, as a fraction of the tensor's range.
        target_accuracy: stop once the lock samples' accuracy is at most this;
            ``None``: chance + 2 points.
        margin: values stay at least ``margin * range`` inside the original ``[min, max]``
            (0: exactly NNSplitter's ``[min_w, max_w]``).
        objective: the loss raised (see :class:`AdvParamsConfig`).
        loss_cap: per-sample cap of ``"capped-ce"``.
        include: ``fnmatch`` patterns of parameter names to consider; empty: all.
        exclude: patterns of parameter names to leave alone.
        num_samples: lock samples (class-balanced).
        batch_size: samples per forward pass.
        seed: seeds the lock samples when no generator is passed.
    """

    num_filters: int = 8
    window_center: float = 0.0
    window_width: float = 1.0
    max_params: int = 100
    iterations: int = 50
    step: float = 0.05
    target_accuracy: float | None = None
    margin: float = 0.0
    objective: Literal["ce", "capped-ce"] = "capped-ce"
    loss_cap: float = 4.6
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    num_samples: int = 1000
    batch_size: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_filters < 1 or self.max_params < 1 or self.iterations < 1:
            raise ValueError("num_filters, max_params and iterations must be at least 1")
        if self.window_width <= 0:
            raise ValueError(f"window_width must be positive, got {self.window_width}")
        if not 0.0 < self.step <= 1.0:
            raise ValueError(f"step must be in (0, 1], got {self.step}")
        if self.target_accuracy is not None and not 0.0 <= self.target_accuracy <= 1.0:
            raise ValueError(f"target_accuracy must be in [0, 1], got {self.target_accuracy}")
        if not 0.0 <= self.margin < 0.5:
            raise ValueError(f"margin must be in [0, 0.5), got {self.margin}")
        if self.objective not in ("ce", "capped-ce"):
            raise ValueError(f"objective must be 'ce' or 'capped-ce', got {self.objective!r}")
        check_lock_options(self)


def filter_importance(weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """First-order importance of each output filter: ``|sum over the filter of g * w|``.

    Example:
        >>> w = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
        >>> g = torch.tensor([[1.0, 1.0], [1.0, 3.0]])
        >>> filter_importance(w, g)
        tensor([3., 0.])
    """
    return (weight * grad).reshape(weight.shape[0], -1).sum(1).abs()


def window_mask(weight: torch.Tensor, center: float, width: float) -> torch.Tensor:
    """Weights within ``width`` standard deviations of ``mean + center * std``."""
    mean, std = float(weight.mean()), float(weight.std()) if weight.numel() > 1 else 0.0
    b = mean + center * std
    return (weight - b).abs() <= width * std


@SCHEMES.register("nnsplitter")
class NNSplitter(ParameterScheme[NNSplitterConfig]):
    """NNSplitter-style (Zhou et al., ICML 2023) window-weight obfuscation in important filters, no RL."""

    name = "nnsplitter"
    Config = NNSplitterConfig

    def search(self, model: nn.Module, setup: LockSetup, progress: Callable[[LockProgress], None] | None) -> Search:
        """Chooses important filters and optimises their window weights."""
        cfg = self.config
        work, cands, samples, target = setup.work, setup.candidates, setup.samples, setup.target
        loss, before = samples.loss_accuracy(work, cfg.objective, cfg.loss_cap)
        grads = samples.gradients(work, cands, cfg.objective, cfg.loss_cap)

        # Choose filters by importance, normalised per tensor so that large layers do
        # not win by size alone.
        ranked: list[tuple[float, str, int]] = []
        for name, p in cands.items():
            imp = filter_importance(p.detach(), grads[name])
            imp = imp / imp.sum().clamp(min=1e-30)
            ranked += [(float(v), name, i) for i, v in enumerate(imp.tolist())]
        ranked.sort(key=lambda t: -t[0])
        masks = {name: torch.zeros_like(p, dtype=torch.bool) for name, p in cands.items()}
        for _, name, row in ranked[: cfg.num_filters]:
            masks[name][row] = window_mask(cands[name].detach(), cfg.window_center, cfg.window_width)[row]
        # Keep at most max_params of the windowed weights, largest |g| first.
        flat_scores = torch.cat([(grads[n].abs() * masks[n]).reshape(-1) for n in cands])
        k = min(cfg.max_params, int(sum(int(m.sum()) for m in masks.values())))
        chosen = flat_scores.topk(k).indices if k else torch.empty(0, dtype=torch.long)
        positions: dict[str, torch.Tensor] = {}
        offset = 0
        for name, p in cands.items():
            inside = chosen[(chosen >= offset) & (chosen < offset + p.numel())] - offset
            if inside.numel():
                positions[name] = inside.sort().values
            offset += p.numel()

        bounds = tensor_bounds(cands, cfg.margin)
        acc, it, stopped = before, 0, "iterations"
        sel = {n: cands[n] for n in positions}
        while it < cfg.iterations and sel:
            if acc <= target:
                stopped = "target"
                break
            it += 1
            g = samples.gradients(work, sel, cfg.objective, cfg.loss_cap)
            with torch.no_grad():
                for name, idx in positions.items():
                    lo, hi, r = bounds[name]
                    flat = sel[name].data.view(-1)
                    gi = g[name].reshape(-1)[idx]
                    flat[idx] = (flat[idx] + cfg.step * r * gi.sign()).clamp(lo, hi)
            loss, acc = samples.loss_accuracy(work, cfg.objective, cfg.loss_cap)
            if progress is not None:
                progress(LockProgress(it, k, cfg.max_params, acc, target, loss, before))
        if acc <= target:
            stopped = "target"
        return Search(
            positions,
            accuracy_before=before,
            accuracy_after=acc,
            rounds=it + 1,
            stopped=stopped,
        )
