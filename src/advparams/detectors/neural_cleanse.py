"""Neural Cleanse (Wang et al., S&P 2019): model inspection by per-label trigger reverse
engineering, and the input filter built on the reversed trigger.

For every label ``t`` a mask ``m`` (``H x W``, in [0, 1]) and a pattern ``p`` (pixels in
[0, 1]) are optimised so that ``(1 - m) * x + m * p`` is classified as ``t`` for clean
``x``, with the cost ``cost * |m|_1``; the cost is raised while the reversed trigger
reaches ``success`` of a batch and lowered while it does not. A label that a backdoor
makes reachable needs a much smaller mask than the others: the L1 norms are compared by
the MAD anomaly index (:func:`advparams.metrics.screening.anomaly_index`, shared with the
GAN removal attack), and labels below the median with an index above
``anomaly_threshold`` (2, the paper's) are flagged. The model counts as backdoored when
any label is flagged.

Input filter [paper, section VI]: the neurons of the feature layer (the input of the last
linear layer) that the reversed trigger of the most anomalous label raises most (the top
``neurons`` share) are watched; an input's score is their mean activation.

Choices [inferred]: ``steps`` Adam steps per label (lr 0.1, betas 0.5 / 0.9, as the
original code), batch 32, initial cost 1e-3, the cost multiplied by 2 (raised) or divided
by 2^1.5 (lowered) after every ``patience`` steps (BackdoorBench's multiplier; NC's
1.5-power asymmetry), success 0.98; a label that never reaches ``success`` gets the
largest possible norm ``H x W``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from advparams._rng import isolated_seed
from advparams.backdoors.compression import feature_module
from advparams.detectors.base import DETECTORS, Detector, Facts, check_common
from advparams.metrics.accuracy import logits_of
from advparams.metrics.screening import anomaly_index
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class NeuralCleanseConfig:
    """Settings of :class:`NeuralCleanse`.

    Attributes:
        steps: optimisation steps per label [inferred].
        trigger_batch: clean samples per step [inferred].
        lr: Adam learning rate of mask and pattern.
        init_cost: the starting weight of the mask's L1 norm.
        cost_multiplier: how the weight is raised (and, to the power 1.5, lowered).
        patience: steps between two adjustments of the weight.
        success: share of a batch the reversed trigger must send to the label.
        anomaly_threshold: labels with a larger anomaly index are flagged [paper: 2].
        neurons: share of the feature layer's neurons the input filter watches [paper: 1 %].
        feature_layer: the module whose input is the feature layer (empty: the last nn.Linear).
        frr: share of clean inputs the input filter's calibrated threshold rejects.
        calibration: held-out clean samples the threshold is set on.
        batch_size: inputs scored at once.
        seed: the draws (batches, initial masks, calibration samples).
    """

    steps: int = 300
    trigger_batch: int = 32
    lr: float = 0.1
    init_cost: float = 1e-3
    cost_multiplier: float = 2.0
    patience: int = 10
    success: float = 0.98
    anomaly_threshold: float = 2.0
    neurons: float = 0.01
    feature_layer: str = ""
    frr: float = 0.05
    calibration: int = 500
    batch_size: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        check_common(self.frr, self.calibration, self.batch_size)
        if min(self.steps, self.trigger_batch, self.patience) < 1:
            raise ValueError("steps, trigger_batch and patience must be at least 1")
        if self.lr <= 0 or self.init_cost < 0 or self.cost_multiplier <= 1.0:
            raise ValueError("lr must be positive, init_cost non-negative and cost_multiplier above 1")
        if not 0.0 < self.success <= 1.0 or not 0.0 < self.neurons <= 1.0:
            raise ValueError("success and neurons must be in (0, 1]")
        if self.anomaly_threshold <= 0:
            raise ValueError("anomaly_threshold must be positive")


@dataclass(frozen=True)
class ReversedTrigger:
    """The smallest trigger found for one label.

    Attributes:
        label: the label it sends inputs to.
        mask: ``[1, 1, H, W]`` in [0, 1].
        pattern: ``[1, C, H, W]`` pixels in [0, 1].
        norm: the L1 norm of the mask (``H x W`` when ``success`` was never reached).
        reached: whether it ever sent ``success`` of a batch to the label.
    """

    label: int
    mask: torch.Tensor
    pattern: torch.Tensor
    norm: float
    reached: bool

    def apply(self, pixels: torch.Tensor) -> torch.Tensor:
        """``pixels`` ([0, 1]) with the reversed trigger stamped on."""
        m = self.mask.to(pixels)
        return (1 - m) * pixels + m * self.pattern.to(pixels)


@DETECTORS.register("neural-cleanse")
class NeuralCleanse(Detector[NeuralCleanseConfig]):
    """Neural Cleanse: trigger reverse engineering, MAD outliers, input filter (Wang et al. 2019)."""

    name = "neural-cleanse"
    Config = NeuralCleanseConfig
    inspects_model = True
    tiny = {"steps": 20, "calibration": 20, "patience": 5}

    def __init__(self, config: NeuralCleanseConfig | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        super().__init__(config, **options)
        self.triggers: list[ReversedTrigger] = []
        self.watched: torch.Tensor | None = None
        self._inspection: dict[str, Any] = {}

    @property
    def inspection(self) -> dict[str, Any]:
        """``norms`` (per label), ``anomaly_index`` (per label), ``flagged`` labels,
        ``suspect`` (the most anomalous label), ``max_anomaly_index``, ``backdoored``,
        ``reached`` (per label)."""
        return dict(self._inspection)

    def reverse(self, x: torch.Tensor, label: int, generator: torch.Generator) -> ReversedTrigger:
        """Reverse-engineers the smallest trigger that sends clean pixels ``x`` to ``label``."""
        net, cfg = self._fitted(), self.config
        dev, dt = self.mean.device, self.mean.dtype
        c, h, w = (int(s) for s in x.shape[1:])
        with isolated_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator))):
            mask_p = (torch.rand(1, 1, h, w) * 0.2 - 2.0).to(device=dev, dtype=dt).requires_grad_(True)
            pattern_p = (torch.rand(1, c, h, w) * 2 - 1).to(device=dev, dtype=dt).requires_grad_(True)
        opt = torch.optim.Adam([mask_p, pattern_p], lr=cfg.lr, betas=(0.5, 0.9))
        cost = cfg.init_cost
        best: tuple[float, torch.Tensor, torch.Tensor] | None = None
        hits = 0
        target = torch.full((cfg.trigger_batch,), label, dtype=torch.long, device=dev)
        for step in range(1, cfg.steps + 1):
            pick = torch.randint(0, int(x.shape[0]), (cfg.trigger_batch,), generator=generator)
            p = x[pick].to(device=dev, dtype=dt)
            with torch.enable_grad():
                mask, pattern = torch.sigmoid(mask_p), torch.sigmoid(pattern_p)
                stamped = (1 - mask) * p + mask * pattern
                logits = logits_of(net, self._normalised(stamped))
                l1 = mask.sum()
                loss = F.cross_entropy(logits, target) + cost * l1
                opt.zero_grad(set_to_none=True)
                loss.backward()
            opt.step()
            rate = float((logits.detach().argmax(1) == label).double().mean())
            if rate >= cfg.success:
                hits += 1
                size = float(l1.detach())
                if best is None or size < best[0]:
                    best = (size, mask.detach().clone(), pattern.detach().clone())
            if step % cfg.patience == 0:
                if hits == cfg.patience:
                    cost = cost * cfg.cost_multiplier if cost > 0 else 1e-3
                elif hits == 0:
                    cost = cost / cfg.cost_multiplier**1.5
                hits = 0
        if best is None:
            with torch.no_grad():
                return ReversedTrigger(
                    label, torch.sigmoid(mask_p).detach(), torch.sigmoid(pattern_p).detach(), float(h * w), False
                )
        return ReversedTrigger(label, best[1], best[2], best[0], True)

    def _fit(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, progress: Callable[[str], None] | None
    ) -> None:
        net, cfg = self._fitted(), self.config
        dev, dt = self.mean.device, self.mean.dtype
        pixels = self._pixels(x.to(device=dev, dtype=dt))
        with torch.no_grad():
            classes = int(logits_of(net, x[:1].to(device=dev, dtype=dt)).shape[1])
        self.triggers = []
        for t in range(classes):
            self.triggers.append(self.reverse(pixels, t, generator))
            if progress is not None:
                progress(f"neural cleanse: label {t + 1}/{classes} reversed (mask L1 {self.triggers[-1].norm:.1f})")
        norms = torch.tensor([r.norm for r in self.triggers], dtype=torch.float64)
        index = anomaly_index(norms)
        median = float(norms.median())
        flagged = [t for t in range(classes) if float(index[t]) > cfg.anomaly_threshold and norms[t] < median]
        suspect = int(index.argmax())
        self._inspection = {
            "norms": [float(v) for v in norms],
            "anomaly_index": [float(v) for v in index],
            "flagged": flagged,
            "suspect": suspect,
            "max_anomaly_index": float(index.max()),
            "backdoored": bool(flagged),
            "reached": [r.reached for r in self.triggers],
        }
        # The input filter: the feature neurons the suspect's reversed trigger raises most.
        feats_clean = self._features(pixels)
        feats_trig = self._features(self.triggers[suspect].apply(pixels))
        gain = (feats_trig - feats_clean).mean(0)
        k = max(1, round(cfg.neurons * int(gain.numel())))
        self.watched = torch.topk(gain, k).indices

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        net = self._fitted()
        store: list[torch.Tensor] = []
        hook = feature_module(net, self.config.feature_layer).register_forward_hook(
            lambda _m, inp, _o: store.append(inp[0].detach().flatten(1))
        )
        try:
            with torch.no_grad():
                for start in range(0, int(pixels.shape[0]), 500):
                    net(self._normalised(pixels[start : start + 500]))
        finally:
            hook.remove()
        return torch.cat(store)

    def _score(self, x: torch.Tensor) -> tuple[torch.Tensor, Facts]:
        if self.watched is None:
            raise RuntimeError("neural cleanse is not fitted")
        feats = self._features(self._pixels(x))
        return feats[:, self.watched.to(feats.device)].mean(1), {}


__all__ = ["NeuralCleanse", "NeuralCleanseConfig", "ReversedTrigger"]
