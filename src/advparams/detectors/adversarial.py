"""Backdoor detection by intentional adversarial perturbation (Xue et al., arXiv 2105.14259).

The paper's idea [paper]: add a small *untargeted* adversarial perturbation to an
untrusted input; a trigger dominates the model's decision, so a triggered input keeps its
label where a clean one loses it. What the abstract leaves open is ours [inferred]; two
readings of "the adversarial perturbation is added to the image" are built (``mode``):

* ``universal`` (the default): one perturbation of L2 norm ``budget``, made once at fit
  time on the clean data (``universal_steps`` steps of normalised gradient ascent of the
  mean cross-entropy of the clean images' own labels, projected onto the ball and the
  pixel range) and added to every input; the score is the margin of the input's own
  label (its logit minus the best other logit) on the perturbed input, one forward pass,
  which fits the paper's claims of low cost and of being faster than STRIP; the paper's
  rule "flag when the label did not move" is the threshold 0 (:attr:`natural_threshold`).
* ``per-input``: PGD in L2 on every input (steepest ascent of the cross-entropy of the
  input's own label, steps of ``step_size``, projected onto the ball of radius ``budget``
  and onto the valid pixel range; no random start, so the score is a function of the
  input); each input stops at the step its label moves, the norm at which it moved is
  interpolated between the last two steps from the margins (exact for a linear model).
  The score is that norm where the label moved, and ``budget`` + the margin left where
  it did not: "how easily the label moves"; the paper's rule is the threshold ``budget``.
  ``steps: 1`` is the one-step (FGM) variant.

Both in [0, 1] pixel units, ``budget`` 3.0 (from the paper's mean perturbation norms 2.87
/ 3.05 / 2.44 on Fashion-MNIST / CIFAR-10 / GTSRB), 20 PGD steps of 2.5 x budget / steps.
The calibrated threshold at ``frr`` is the default decision; both rules are reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from advparams.detectors.base import DETECTORS, Detector, Facts, check_common
from advparams.metrics.accuracy import logits_of
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class AdversarialConfig:
    """Settings of :class:`AdversarialPerturbation`.

    Attributes:
        budget: the L2 radius of the perturbation in [0, 1] pixel units [inferred].
        steps: PGD steps [inferred].
        step_size: the length of each step (0: ``2.5 * budget / steps``) [inferred].
        mode: ``per-input`` (an attack on every input) or ``universal`` (one perturbation
            made at fit time, added to every input) [inferred].
        universal_steps: gradient steps that make the universal perturbation (batches of
            ``batch_size`` clean images) [inferred].
        frr: share of clean inputs the calibrated threshold rejects.
        calibration: held-out clean samples the threshold is set on.
        batch_size: inputs attacked at once.
        seed: which clean samples calibrate.
    """

    budget: float = 3.0
    steps: int = 20
    step_size: float = 0.0
    mode: Literal["per-input", "universal"] = "universal"
    universal_steps: int = 200
    frr: float = 0.05
    calibration: int = 500
    batch_size: int = 250
    seed: int = 0

    def __post_init__(self) -> None:
        check_common(self.frr, self.calibration, self.batch_size)
        if not 0.0 < self.budget <= 1000.0:
            raise ValueError(f"budget must be in (0, 1000], got {self.budget}")
        if not 1 <= self.steps <= 10_000:
            raise ValueError(f"steps must be in [1, 10000], got {self.steps}")
        if self.step_size < 0:
            raise ValueError("step_size must be non-negative (0: 2.5 * budget / steps)")
        if self.mode not in ("per-input", "universal"):
            raise ValueError(f"mode must be 'per-input' or 'universal', got {self.mode!r}")
        if not 1 <= self.universal_steps <= 100_000:
            raise ValueError(f"universal_steps must be in [1, 100000], got {self.universal_steps}")


def _margin(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Logit of ``label`` minus the best other logit (positive while ``label`` wins)."""
    own = logits.gather(1, label[:, None])[:, 0]
    other = logits.scatter(1, label[:, None], float("-inf")).max(1).values
    return own - other


def l2_attack(
    model: torch.nn.Module,
    pixels: torch.Tensor,
    normalise: Callable[[torch.Tensor], torch.Tensor],
    *,
    budget: float,
    steps: int,
    step_size: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Untargeted PGD-L2 with a stop per input at the step its label moves.

    Args:
        model: the classifier (frozen, eval mode).
        pixels: inputs in [0, 1] pixel units ``[N, C, H, W]``.
        normalise: maps pixels to the model's inputs.
        budget: the radius of the L2 ball.
        steps: the number of steps.
        step_size: the length of each step.

    Returns:
        ``(moved, l2, margin, delta)``: whether each label moved, the norm at which it
        moved (interpolated; the final norm where it did not), the margin left at the
        end, and the final perturbation (never longer than ``budget``).
    """
    with torch.no_grad():
        label = logits_of(model, normalise(pixels)).argmax(1)
    n = pixels.shape[0]
    delta = torch.zeros_like(pixels)
    moved = torch.zeros(n, dtype=torch.bool, device=pixels.device)
    l2 = torch.zeros(n, dtype=pixels.dtype, device=pixels.device)
    margin = torch.zeros(n, dtype=pixels.dtype, device=pixels.device)
    prev_norm = torch.zeros_like(l2)
    prev_margin = torch.zeros_like(l2)
    for step in range(steps + 1):
        with torch.enable_grad():
            d = delta.detach().requires_grad_(True)
            logits = logits_of(model, normalise(pixels + d))
            m = _margin(logits.detach(), label)
            norm = delta.flatten(1).norm(dim=1)
            newly = ~moved & (m < 0)
            if step > 0 and bool(newly.any()):
                frac = (prev_margin / (prev_margin - m).clamp_min(1e-12)).clamp(0, 1)
                l2 = torch.where(newly, prev_norm + frac * (norm - prev_norm), l2)
                margin = torch.where(newly, m, margin)
                moved = moved | newly
            active = ~moved
            if step == steps or not bool(active.any()):
                break
            loss = F.cross_entropy(logits, label, reduction="sum")
            (grad,) = torch.autograd.grad(loss, d)
        prev_norm, prev_margin = norm, m
        g = grad.flatten(1)
        g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
        step_d = (step_size * g).view_as(delta) * active.view(-1, 1, 1, 1).to(delta.dtype)
        new = delta + step_d
        scale = (budget / new.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
        new = new * scale.view(-1, 1, 1, 1)
        new = (pixels + new).clamp(0.0, 1.0) - pixels
        delta = torch.where(active.view(-1, 1, 1, 1), new, delta)
    final_norm = delta.flatten(1).norm(dim=1)
    l2 = torch.where(moved, l2, final_norm)
    margin = torch.where(moved, margin, m)
    return moved, l2, margin, delta


@DETECTORS.register("adversarial")
class AdversarialPerturbation(Detector[AdversarialConfig]):
    """Backdoor detection by intentional adversarial perturbation (Xue et al. 2021)."""

    name = "adversarial"
    Config = AdversarialConfig
    tiny = {"steps": 5, "calibration": 20}

    @property
    def step_size(self) -> float:
        """The step length in use."""
        cfg = self.config
        return cfg.step_size or 2.5 * cfg.budget / cfg.steps

    def __init__(self, config: AdversarialConfig | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        super().__init__(config, **options)
        self.universal: torch.Tensor | None = None

    @property
    def natural_threshold(self) -> float:
        """The paper's rule: an input is flagged when its label did not move within the
        budget (per input: the score ``budget``; universal: a margin of 0)."""
        return 0.0 if self.config.mode == "universal" else float(self.config.budget)

    def _fit(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, progress: Callable[[str], None] | None
    ) -> None:
        """Per input: nothing to learn (only the threshold is calibrated); universal: the
        one perturbation, from the clean images ``x``."""
        cfg = self.config
        if cfg.mode != "universal":
            return
        net = self._fitted()
        dev, dt = self.mean.device, self.mean.dtype
        delta = torch.zeros(1, *x.shape[1:], device=dev, dtype=dt)
        step = 2.5 * cfg.budget / min(cfg.universal_steps, 100)
        for _ in range(cfg.universal_steps):
            pick = torch.randint(0, int(x.shape[0]), (min(cfg.batch_size, int(x.shape[0])),), generator=generator)
            p = self._pixels(x[pick].to(device=dev, dtype=dt))
            with torch.no_grad():
                own = logits_of(net, self._normalised(p)).argmax(1)
            with torch.enable_grad():
                d = delta.detach().requires_grad_(True)
                loss = F.cross_entropy(logits_of(net, self._normalised((p + d).clamp(0, 1))), own)
                (grad,) = torch.autograd.grad(loss, d)
            delta = delta + step * grad / grad.norm().clamp_min(1e-12)
            delta = delta * (cfg.budget / delta.norm().clamp_min(1e-12)).clamp(max=1.0)
        self.universal = delta.detach()

    def _score(self, x: torch.Tensor) -> tuple[torch.Tensor, Facts]:
        net = self._fitted()
        cfg = self.config
        if cfg.mode == "universal":
            if self.universal is None:
                raise RuntimeError("the universal perturbation is not made")
            p = self._pixels(x)
            with torch.no_grad():
                own = logits_of(net, x).argmax(1)
                perturbed = (p + self.universal.to(p)).clamp(0.0, 1.0)
                margin = _margin(logits_of(net, self._normalised(perturbed)), own)
            l2 = (perturbed - p).flatten(1).norm(dim=1)
            return margin, {"l2": l2, "moved": margin < 0}
        moved, l2, margin, _ = l2_attack(
            net, self._pixels(x), self._normalised, budget=cfg.budget, steps=cfg.steps, step_size=self.step_size
        )
        score = torch.where(moved, l2, cfg.budget + margin.clamp_min(0.0))
        return score, {"l2": l2, "moved": moved}


__all__ = ["AdversarialConfig", "AdversarialPerturbation", "l2_attack"]
