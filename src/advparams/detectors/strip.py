"""STRIP (Gao et al., ACSAC 2019): superimpose an input with clean images and look at the
entropy of the model's predictions.

A clean input blended with other clean images gets varied predictions (high entropy); an
input whose trigger dominates keeps its (target) answer through the blends (low entropy).
The score is minus the mean entropy (nats) over ``overlays`` blends, so higher is more
suspicious.

Blending (``blend``): ``add`` (the default) is Gao et al.'s rule, the two images added
in [0, 1] pixels and clipped (their code adds with OpenCV's ``addWeighted(x, 1, o, 1, 0)``,
which saturates); ``weighted`` is TrojanZoo's ``alpha * x + (1 - alpha) * overlay``
(alpha 0.5), under which STRIP misses blended triggers (docs/detection.md measures both).
Choices [inferred]: 64 overlays (TrojanZoo; Gao et al. use 100), one fixed set of
overlays drawn from the clean data at fit time for every input, so scores do not depend
on the order of the inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from advparams.detectors.base import DETECTORS, Detector, Facts, check_common
from advparams.errors import AdvParamsError
from advparams.metrics.accuracy import logits_of
from advparams.registry import validated

BLENDS = ("add", "weighted")


def superimpose(pixels: torch.Tensor, overlays: torch.Tensor, blend: str, alpha: float = 0.5) -> torch.Tensor:
    """Every ``[N, ...]`` input superimposed with every ``[K, ...]`` overlay: ``[N, K, ...]`` pixels.

    Example:
        >>> x, o = torch.tensor([[0.25], [0.75]]), torch.tensor([[0.5]])
        >>> superimpose(x, o, "add")[:, 0, 0].tolist()
        [0.75, 1.0]
        >>> superimpose(x, o, "weighted")[:, 0, 0].tolist()
        [0.375, 0.625]
    """
    if blend == "add":
        return (pixels[:, None] + overlays[None]).clamp(0.0, 1.0)
    if blend == "weighted":
        return alpha * pixels[:, None] + (1.0 - alpha) * overlays[None]
    raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")


@dataclass(frozen=True)
@validated
class StripConfig:
    """Settings of :class:`Strip`.

    Attributes:
        overlays: clean images each input is superimposed with [inferred].
        blend: ``add`` (Gao et al.: the images added in pixels, clipped to [0, 1]) or
            ``weighted`` (TrojanZoo: ``alpha * x + (1 - alpha) * overlay``).
        alpha: weight of the input in a ``weighted`` blend [inferred]; ``add`` ignores it.
        frr: share of clean inputs the calibrated threshold rejects.
        calibration: held-out clean samples the threshold is set on.
        batch_size: inputs blended and scored at once.
        seed: which clean samples calibrate and which are overlays.
    """

    overlays: int = 64
    blend: str = "add"
    alpha: float = 0.5
    frr: float = 0.05
    calibration: int = 500
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        check_common(self.frr, self.calibration, self.batch_size)
        if not 1 <= self.overlays <= 10_000:
            raise ValueError(f"overlays must be in [1, 10000], got {self.overlays}")
        if self.blend not in BLENDS:
            raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {self.blend!r}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")


def mean_entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """The mean Shannon entropy (nats) over the last-but-one axis of ``[N, B, K]`` probabilities.

    Example:
        >>> p = torch.full((1, 2, 4), 0.25)
        >>> round(float(mean_entropy(p)[0]), 6) == round(float(torch.log(torch.tensor(4.0))), 6)
        True
    """
    logp = probabilities.clamp_min(1e-30).log()
    return -(probabilities * logp).sum(-1).mean(-1)


@DETECTORS.register("strip")
class Strip(Detector[StripConfig]):
    """STRIP: entropy of the predictions on superimposed inputs (Gao et al. 2019)."""

    name = "strip"
    Config = StripConfig
    tiny = {"overlays": 8, "calibration": 20}

    def __init__(self, config: StripConfig | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        super().__init__(config, **options)
        self.overlay_images: torch.Tensor | None = None

    def _fit(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, progress: Callable[[str], None] | None
    ) -> None:
        k = self.config.overlays
        if x.shape[0] < 1:
            raise AdvParamsError("STRIP needs clean images to superimpose")
        pick = torch.randperm(int(x.shape[0]), generator=generator)[:k]
        if pick.numel() < k:  # fewer clean images than overlays: draw with repetition
            pick = torch.randint(0, int(x.shape[0]), (k,), generator=generator)
        # The normalisation tensors already sit on the model's device, in its dtype.
        self.overlay_images = x[pick].to(device=self.mean.device, dtype=self.mean.dtype)

    def _score(self, x: torch.Tensor) -> tuple[torch.Tensor, Facts]:
        net = self._fitted()
        if self.overlay_images is None:
            raise AdvParamsError("the strip detector is not fitted: call fit(model, clean_data) first")
        cfg = self.config
        ov = self.overlay_images.to(device=x.device, dtype=x.dtype)
        # Superimposed in [0, 1] pixels (adding clips there), then normalised again.
        blends = self._normalised(superimpose(self._pixels(x), self._pixels(ov), cfg.blend, cfg.alpha))
        n, k = blends.shape[:2]
        with torch.no_grad():
            probs = logits_of(net, blends.reshape(n * k, *x.shape[1:])).softmax(1).reshape(n, k, -1)
        entropy = mean_entropy(probs)
        return -entropy, {"entropy": entropy}


__all__ = ["BLENDS", "Strip", "StripConfig", "mean_entropy", "superimpose"]
