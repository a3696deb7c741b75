"""Re-optimising suspected locked weights on the attacker's data.

An attacker who believes some weights were perturbed can treat only those as free and
train them (and nothing else) to lower the loss on their own samples. Shared by the
selection re-run (``retrace``) and the detection attack (``outlier-reset`` with
``reset="reoptimise"``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from advparams.data.base import DataLike, all_labels, balanced_indices, gather
from advparams.devices import model_device
from advparams.metrics.accuracy import logits_of


def attacker_batch(
    data: DataLike, num_samples: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The attacker's own samples: ``num_samples`` drawn class-balanced, as float32 tensors."""
    idx = balanced_indices(all_labels(data), num_samples, generator)
    x, y = gather(data, idx)
    return x.to(device=device, dtype=torch.float32), y.to(device)


def reoptimise_(
    model: nn.Module,
    suspects: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    batch_size: int = 256,
) -> None:
    """Trains only the ``suspects`` of ``model`` in place (hence the trailing ``_``).

    Adam on the cross-entropy of ``(x, y)``, full passes over the samples in batches;
    every other value's gradient is masked to zero, and after each step each suspect is
    clamped to its tensor's ``[min, max]`` as it was at the start (what the attacker can
    see). The model is put in eval mode, so BatchNorm statistics do not move.

    Args:
        model: the model to change (a copy the caller owns), float32.
        suspects: tensor name -> flat indices of the values to train.
        x: attacker inputs.
        y: attacker labels.
        steps: optimiser steps.
        lr: Adam learning rate.
        batch_size: samples per step (cycled).
    """
    params = dict(model.named_parameters())
    free = {name: idx for name, idx in suspects.items() if len(idx) and name in params}
    if not free or steps < 1:
        return
    model.eval()
    device = model_device(model)
    masks, bounds = {}, {}
    for name, idx in free.items():
        p = params[name]
        m = torch.zeros(p.numel(), dtype=torch.bool, device=device)
        m[torch.as_tensor(idx, dtype=torch.long, device=device)] = True
        masks[name] = m.view_as(p)
        bounds[name] = (float(p.detach().min()), float(p.detach().max()))
    flags = {name: p.requires_grad for name, p in params.items()}
    for name, p in params.items():
        p.requires_grad_(name in free)
    opt = torch.optim.Adam([params[n] for n in free], lr=lr)
    n = int(y.shape[0])
    try:
        for step in range(steps):
            start = (step * batch_size) % n
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(logits_of(model, xb), yb).backward()
            for name in free:
                g = params[name].grad
                if g is not None:
                    g.mul_(masks[name])
            opt.step()
            with torch.no_grad():
                for name in free:
                    p = params[name]
                    lo, hi = bounds[name]
                    # Non-suspects had zero gradient from the first step, so Adam's
                    # moments for them are zero and they have not moved; clamp suspects.
                    p.copy_(torch.where(masks[name], p.clamp(lo, hi), p))
    finally:
        for name, p in params.items():
            p.requires_grad_(flags[name])
            p.grad = None
