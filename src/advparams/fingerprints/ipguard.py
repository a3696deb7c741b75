"""IPGuard: fingerprints from data points near the decision boundary (Cao, Jia and Gong, AsiaCCS 2021).

Each fingerprint point starts from a random image of the owner's data with the owner's
label ``i``; a second label ``j`` is drawn, and the point is moved (Adam on the input,
kept in the image box) to minimise

    ReLU(g_i(x) - g_j(x) + k) + ReLU(max_{t != i, j} g_t(x) - g_i(x))

(IPGuard's objective): the owner's model then answers ``j`` by a margin of ``k`` over
``i``, its runner-up, so the point lies close to the boundary between the two. A copy
of the model, which keeps the boundary, gives the same labels; an independently trained
model of the task does so less often. The score is the *matching rate*: the share of
points the suspect labels as the owner's model did.

From the paper [paper]: the objective and the matching rate. [inferred]: the number of
points, ``k``, the optimiser, its steps and rate, and starting from data rather than
noise (an option).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from advparams.data.base import ImageDataset
from advparams.devices import model_device, model_float_dtype
from advparams.fingerprint import model_fingerprint
from advparams.fingerprints.base import (
    FINGERPRINTS,
    MAX_PROBES,
    Fingerprint,
    FingerprintScheme,
    box_of,
    check_seed,
    scores_of,
)
from advparams.metrics.accuracy import logits_of
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class IPGuardConfig:
    """Settings of :class:`IPGuard`.

    Attributes:
        points: fingerprint data points [inferred].
        k: the margin of the objective (0: on the boundary; larger: more robust to
            changes of the model, less unique) [inferred].
        steps: Adam steps per batch of points [inferred].
        lr: Adam's learning rate, in normalised input units [inferred].
        init: start from images of the owner's data (``"data"``) or from uniform noise in
            the image box (``"noise"``) [inferred].
        batch_size: points optimised at once.
        seed: seeds the starting points and the second labels.
    """

    points: int = 100
    k: float = 1.0
    steps: int = 300
    lr: float = 0.01
    init: Literal["data", "noise"] = "data"
    batch_size: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.points <= MAX_PROBES or self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"points must be in [1, {MAX_PROBES}], steps and batch_size at least 1")
        if self.k < 0 or self.lr <= 0:
            raise ValueError("k must be non-negative and lr positive")
        check_seed(self.seed)


def boundary_loss(scores: torch.Tensor, i: torch.Tensor, j: torch.Tensor, k: float) -> torch.Tensor:
    """IPGuard's objective per point: ``ReLU(g_i - g_j + k) + ReLU(max_{t != i,j} g_t - g_i)``.

    Example:
        >>> g = torch.tensor([[1.0, 3.0, 0.0]])  # class 1 leads class 0 by 2, class 2 trails
        >>> boundary_loss(g, torch.tensor([0]), torch.tensor([1]), k=1.0)
        tensor([0.])
        >>> boundary_loss(g, torch.tensor([0]), torch.tensor([1]), k=3.0)
        tensor([1.])
    """
    gi = scores.gather(1, i.view(-1, 1)).squeeze(1)
    gj = scores.gather(1, j.view(-1, 1)).squeeze(1)
    others = scores.clone()
    others.scatter_(1, i.view(-1, 1), float("-inf"))
    others.scatter_(1, j.view(-1, 1), float("-inf"))
    rest = others.max(1).values if scores.shape[1] > 2 else torch.full_like(gi, float("-inf"))
    return F.relu(gi - gj + k) + F.relu(rest - gi)


def boundary_points(
    model: nn.Module,
    start: torch.Tensor,
    i: torch.Tensor,
    j: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    *,
    k: float,
    steps: int,
    lr: float,
) -> torch.Tensor:
    """``start`` moved by Adam to minimise :func:`boundary_loss` (kept in ``[low, high]``);
    ``model`` is not changed (its parameters get no gradient)."""
    device, dtype = model_device(model), model_float_dtype(model)
    was = model.training
    model.eval()
    grads = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    lo, hi = low.to(device, dtype), high.to(device, dtype)
    x = start.to(device=device, dtype=dtype).clone().requires_grad_(True)
    i, j = i.to(device), j.to(device)
    opt = torch.optim.Adam([x], lr=lr)
    try:
        for _ in range(steps):
            loss = boundary_loss(logits_of(model, x), i, j, k)
            if float(loss.detach().max()) <= 0.0:
                break
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            with torch.no_grad():
                x.copy_(torch.maximum(torch.minimum(x, hi), lo))
    finally:
        for p, g in zip(model.parameters(), grads, strict=True):
            p.requires_grad_(g)
        model.train(was)
    return x.detach().float().cpu()


@FINGERPRINTS.register("ipguard")
class IPGuard(FingerprintScheme[IPGuardConfig]):
    """IPGuard (Cao, Jia and Gong 2021): points near the decision boundary, matched by label."""

    name = "ipguard"
    Config = IPGuardConfig
    probes_option = "points"
    tiny = {"points": 8, "steps": 20}

    def _extract(self, model: nn.Module, data: ImageDataset, generator: torch.Generator) -> Fingerprint:
        cfg = self.config
        low, high = box_of(data)
        c, h, w = data.input_shape
        if cfg.init == "noise":
            u = torch.rand(cfg.points, c, h, w, generator=generator)
            start = low + u * (high - low)
        else:
            idx = torch.randint(0, len(data), (cfg.points,), generator=generator)
            start = data.tensors(idx)[0].float()
        own = scores_of(model, start, batch_size=cfg.batch_size)
        num_classes = int(own.shape[1])
        i = own.argmax(1)
        j = (i + torch.randint(1, num_classes, (cfg.points,), generator=generator)) % num_classes
        points = torch.cat(
            [
                boundary_points(
                    model,
                    start[b : b + cfg.batch_size],
                    i[b : b + cfg.batch_size],
                    j[b : b + cfg.batch_size],
                    low,
                    high,
                    k=cfg.k,
                    steps=cfg.steps,
                    lr=cfg.lr,
                )
                for b in range(0, cfg.points, cfg.batch_size)
            ]
        ).contiguous()
        labels = scores_of(model, points, batch_size=cfg.batch_size).argmax(1).long()
        return Fingerprint(
            scheme=self.name,
            inputs=points,
            labels=labels,
            maps=None,
            mean=data.mean,
            std=data.std,
            num_classes=num_classes,
            model_fingerprint=model_fingerprint(model),
            config=asdict(cfg),
        )

    def similarities(self, suspect: nn.Module, fingerprint: Fingerprint) -> torch.Tensor:
        """1.0 where the suspect labels a point as the owner's model did, else 0.0."""
        self._check(fingerprint)
        preds = scores_of(suspect, fingerprint.inputs, batch_size=self.config.batch_size).argmax(1)
        return (preds == fingerprint.labels).double()

    def score(self, suspect: nn.Module, fingerprint: Fingerprint) -> float:
        """The matching rate."""
        return float(self.similarities(suspect, fingerprint).mean())


__all__ = ["IPGuard", "IPGuardConfig", "boundary_loss", "boundary_points"]
