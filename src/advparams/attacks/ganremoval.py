"""GAN-based detection and removal of backdoor watermarks (Xue et al., arXiv 2106.08104).

Phase 1 [paper: a GAN and a few clean images reverse the watermark]: a conditional
generator ``G(z, t) -> delta`` is trained so that ``x + delta`` is classified as ``t`` for
every class ``t``, with an L1 penalty on ``delta`` (DeepInspect-style [inferred]). The
watermark class is the one reachable with an abnormally small perturbation. Under a
strong L1 weight some classes are not reached at all, so each class is scored by its
perturbation's mean absolute size *per success* (size / share of probes sent to the
class) [inferred]; the class with the largest MAD anomaly index of that score is taken
(index > 2 counts as detected; the lowest-score class is used either way).

Phase 2 [paper]: the model is fine-tuned on the attacker's clean images and on clean
images carrying the reversed trigger of that class, with their *true* labels, which
unlearns the watermark.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advparams._rng import isolated_seed
from advparams.attacks._images import attacker_images, normalisation
from advparams.attacks.base import ATTACKS, Attack, Attacked, require_data
from advparams.data.base import DataLike, iter_batches
from advparams.devices import model_device, model_float_dtype
from advparams.keys.key import Key
from advparams.metrics.accuracy import logits_of
from advparams.metrics.screening import anomaly_index
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class GanRemovalConfig:
    """Settings of :class:`GanRemoval`.

    Attributes:
        data_fraction: share of the training data the attacker holds.
        steps: generator training steps (phase 1).
        batch_size: samples per generator step and per fine-tuning step.
        beta: weight of the L1 size penalty (mean absolute perturbation, in
            normalised units) against the cross-entropy toward the class.
        noise_dim: size of the generator's noise input.
        epochs: fine-tuning epochs (phase 2).
        lr: fine-tuning learning rate.
        seed: seeds the samples, the generator and the fine-tuning.
    """

    data_fraction: float = 0.05
    steps: int = 300
    batch_size: int = 64
    beta: float = 20.0
    noise_dim: int = 32
    epochs: int = 5
    lr: float = 5e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.data_fraction <= 1.0:
            raise ValueError(f"data_fraction must be in (0, 1], got {self.data_fraction}")
        if min(self.steps, self.batch_size, self.noise_dim, self.epochs) < 1:
            raise ValueError("steps, batch_size, noise_dim and epochs must be at least 1")
        if self.beta < 0 or self.lr <= 0:
            raise ValueError("beta must be non-negative and lr positive")


class TriggerGenerator(nn.Module):
    """``G(z, t)``: a perturbation image for target class ``t`` (an MLP, tanh-bounded)."""

    def __init__(self, noise_dim: int, classes: int, shape: tuple[int, ...], bound: float) -> None:
        super().__init__()
        self.classes, self.shape, self.bound = classes, shape, bound
        size = 1
        for s in shape:
            size *= s
        self.net = nn.Sequential(nn.Linear(noise_dim + classes, 256), nn.ReLU(), nn.Linear(256, size))

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z, F.one_hot(t, self.classes).to(z.dtype)], dim=1)
        return self.bound * torch.tanh(self.net(h)).view(-1, *self.shape)


def _bounds(data: DataLike, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised values of pixels 0 and 1 (the valid input range)."""
    mean, std = normalisation(data, channels)
    return (0 - mean) / std, (1 - mean) / std


@ATTACKS.register("gan-removal")
class GanRemoval(Attack[GanRemovalConfig]):
    """GAN-based watermark detection and removal (Xue et al., arXiv 2106.08104, 2021)."""

    name = "gan-removal"
    Config = GanRemovalConfig
    tiny = {"steps": 10, "epochs": 1}

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Reverses the watermark trigger, then fine-tunes a copy of ``model`` to unlearn it."""
        data = require_data(data, self.name)
        cfg = self.config
        _, x, y = attacker_images(data, cfg.data_fraction, generator, self.name)
        device, dtype = model_device(model), model_float_dtype(model)
        lo, hi = (b.to(device=device, dtype=dtype) for b in _bounds(data, x.shape[1]))
        net = copy.deepcopy(model).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            classes = int(logits_of(net, x[:1].to(device=device, dtype=dtype)).shape[1])
        with isolated_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator))):
            gen_net = TriggerGenerator(cfg.noise_dim, classes, tuple(x.shape[1:]), float((hi - lo).max()))
        gen_net = gen_net.to(device=device, dtype=dtype)
        opt = torch.optim.Adam(gen_net.parameters(), lr=1e-3)

        def perturbed(xb: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            z = torch.randn(xb.shape[0], cfg.noise_dim, generator=generator).to(device=device, dtype=dtype)
            delta = gen_net(z, t)
            return torch.max(torch.min(xb + delta, hi), lo), delta

        n = x.shape[0]
        for _ in range(cfg.steps):  # phase 1: reverse a trigger for every class
            pick = torch.randint(0, n, (cfg.batch_size,), generator=generator)
            t = torch.randint(0, classes, (cfg.batch_size,), generator=generator).to(device)
            xb = x[pick].to(device=device, dtype=dtype)
            adv, delta = perturbed(xb, t)
            loss = F.cross_entropy(net(adv), t) + cfg.beta * delta.abs().flatten(1).sum(1).mean() / delta[0].numel()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        gen_net.eval()
        norms, success = [], []
        with torch.no_grad():
            probe = x[: min(n, 256)].to(device=device, dtype=dtype)
            for c in range(classes):
                t = torch.full((probe.shape[0],), c, dtype=torch.long, device=device)
                adv, _ = perturbed(probe, t)
                norms.append(float((adv - probe).abs().flatten(1).mean(1).mean()))
                success.append(float((net(adv).argmax(1) == t).float().mean()))
        per_success = [n / max(s, 0.01) for n, s in zip(norms, success, strict=True)]
        index = anomaly_index(torch.tensor(per_success))
        target = int(index.argmax())
        # Phase 2: unlearn on clean images and on images with the reversed trigger, true labels.
        tuned = copy.deepcopy(model)
        for p in tuned.parameters():
            if p.is_floating_point():
                p.requires_grad_(True)
        opt2 = torch.optim.Adam(tuned.parameters(), lr=cfg.lr)
        for _ in range(cfg.epochs):
            tuned.train()
            for xb, yb in iter_batches((x, y), cfg.batch_size, shuffle=True, generator=generator):
                xb, yb = xb.to(device=device, dtype=dtype), yb.to(device)
                with torch.no_grad():
                    adv, _ = perturbed(xb, torch.full_like(yb, target))
                out = tuned(torch.cat([xb, adv]))
                loss = F.cross_entropy(out, torch.cat([yb, yb]))
                opt2.zero_grad(set_to_none=True)
                loss.backward()
                opt2.step()
        tuned.eval()
        info = {
            "num_samples": int(n),
            "detected_class": target,
            "anomaly_index": float(index.max()),
            "detected": bool(index.max() > 2.0),
            "trigger_norms": norms,
            "trigger_success": success,
            "trigger_per_success": per_success,
        }
        return Attacked(tuned, {}, info)
