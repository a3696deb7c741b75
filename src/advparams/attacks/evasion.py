"""Detector evasion: the thief serves the stolen model behind a backdoor detector and
answers every flagged query with its second-ranked label.

Ownership verification of a backdoor-style watermark queries key images, which are
triggered inputs to the model; a detector that recognises triggered inputs (the
adversarial-perturbation detector, STRIP, Neural Cleanse's input filter) lets the thief
turn exactly those answers away from the watermark label. The detector is fitted on the
attacker's clean share of the data and calibrated for ``frr``, the share of clean queries
it turns away too: the clean accuracy the wrapper costs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advparams.attacks._images import attacker_images
from advparams.attacks.base import ATTACKS, Attack, Attacked, require_data
from advparams.data.base import DataLike, ImageDataset
from advparams.detectors import DETECTORS, Detector
from advparams.keys.key import Key
from advparams.metrics.accuracy import logits_of
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class DetectorEvasionConfig:
    """Settings of :class:`DetectorEvasion`.

    Attributes:
        detector: the registered detector the thief runs.
        frr: share of clean queries the detector is calibrated to turn away.
        data_fraction: share of the training data the attacker holds (the detector's
            clean data: fitting and calibration).
        calibration: of those, the samples the threshold is set on.
        budget: the adversarial detector's L2 budget (0: its default).
        steps: the adversarial detector's steps (0: its default).
        mode: the adversarial detector's mode, ``universal`` or ``per-input`` (empty: its default).
        seed: seeds the samples and the detector's draws.
    """

    detector: str = "adversarial"
    frr: float = 0.05
    data_fraction: float = 0.05
    calibration: int = 500
    budget: float = 0.0
    steps: int = 0
    mode: str = ""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r}; known: {', '.join(DETECTORS.names())}")
        if not 0.0 <= self.frr < 1.0:
            raise ValueError(f"frr must be in [0, 1), got {self.frr}")
        if not 0.0 < self.data_fraction <= 1.0:
            raise ValueError(f"data_fraction must be in (0, 1], got {self.data_fraction}")
        if self.calibration < 10 or self.budget < 0 or self.steps < 0:
            raise ValueError("calibration must be at least 10; budget and steps non-negative")
        if self.mode not in ("", "universal", "per-input"):
            raise ValueError(f"mode must be 'universal' or 'per-input', got {self.mode!r}")
        if (self.budget or self.steps or self.mode) and self.detector != "adversarial":
            raise ValueError("budget, steps and mode are options of the adversarial detector only")

    def detector_options(self) -> dict[str, Any]:
        """The options the detector is built with."""
        opts: dict[str, Any] = {"frr": self.frr, "calibration": self.calibration, "seed": self.seed}
        if self.detector == "adversarial":
            if self.budget:
                opts["budget"] = self.budget
            if self.steps:
                opts["steps"] = self.steps
            if self.mode:
                opts["mode"] = self.mode
        return opts


def second_ranked(logits: torch.Tensor, flagged: torch.Tensor) -> torch.Tensor:
    """``logits`` with the top two scores of every flagged row swapped, so that the
    flagged rows answer their second-ranked label; the other rows are untouched.

    Example:
        >>> out = second_ranked(torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]]), torch.tensor([True, False]))
        >>> out.tolist()
        [[2.0, 1.0, 3.0], [0.0, 5.0, 1.0]]
    """
    out = logits.clone()
    if not bool(flagged.any()):
        return out
    top = logits.topk(2, dim=1)
    rows = torch.nonzero(flagged).flatten()
    first, second = top.indices[rows, 0], top.indices[rows, 1]
    out[rows, first] = top.values[rows, 1]
    out[rows, second] = top.values[rows, 0]
    return out


class EvasionWrapper(nn.Module):
    """The stolen model behind a fitted detector (see the module docstring).

    Attributes:
        model: the unchanged stolen model.
        detector: the fitted detector.
    """

    def __init__(self, model: nn.Module, detector: Detector[Any]) -> None:
        super().__init__()
        self.model = model
        self.detector = detector

    def flagged(self, x: torch.Tensor) -> torch.Tensor:
        """Which queries the detector flags (answered with the second-ranked label)."""
        return self.detector.detect(x).to(x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return second_ranked(logits_of(self.model, x), self.flagged(x))


@ATTACKS.register("detector-evasion")
class DetectorEvasion(Attack[DetectorEvasionConfig]):
    """Detector evasion: a backdoor detector (e.g. Xue et al. 2021) turns watermark queries away."""

    name = "detector-evasion"
    filters_queries = True
    Config = DetectorEvasionConfig
    tiny = {"calibration": 20, "steps": 3}

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Fits the detector on the attacker's clean share and wraps a copy of ``model``."""
        data = require_data(data, self.name)
        cfg = self.config
        idx, x, y = attacker_images(data, cfg.data_fraction, generator, self.name)
        stolen = copy.deepcopy(model).eval()
        # An ImageDataset's subset keeps its normalisation, which the detector needs.
        own: DataLike = data.subset(idx) if isinstance(data, ImageDataset) else (x, y)
        detector = DETECTORS.build(cfg.detector, cfg.detector_options())
        detector.fit(stolen, own, generator=generator)
        info: dict[str, Any] = {
            "num_samples": int(idx.numel()),
            "detector": cfg.detector,
            "threshold": float(detector.threshold or 0.0),
            "calibration_frr": detector.calibration_frr(),
            "fit_seconds": detector.fit_seconds,
        }
        if detector.inspects_model:
            insp = detector.inspection
            info["inspection"] = {k: insp[k] for k in ("flagged", "suspect", "max_anomaly_index") if k in insp}
        return Attacked(EvasionWrapper(stolen, detector).eval(), {}, info)


__all__ = ["DetectorEvasion", "DetectorEvasionConfig", "EvasionWrapper", "second_ranked"]
