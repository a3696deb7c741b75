"""The training-set mode: screen every sample of a training set with a fitted detector and
keep the ones it does not flag (then retrain on them and measure the ASR left)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from advparams.data.base import ImageDataset
from advparams.detectors.base import Detector


@dataclass(frozen=True)
class Sanitised:
    """What screening a training set found.

    Attributes:
        data: the samples kept (not flagged), in their original order.
        kept: their indices in the screened set.
        flagged: the indices of the flagged samples.
        scores: every sample's score.
        seconds: how long the screening took.
    """

    data: ImageDataset
    kept: torch.Tensor
    flagged: torch.Tensor
    scores: torch.Tensor
    seconds: float

    def recall(self, poisoned: torch.Tensor) -> float:
        """The share of the truly poisoned samples (indices ``poisoned``) that were flagged."""
        if poisoned.numel() == 0:
            return 1.0
        return float(torch.isin(poisoned, self.flagged).double().mean())

    def precision(self, poisoned: torch.Tensor) -> float:
        """The share of the flagged samples that were truly poisoned (0 when none is flagged)."""
        if self.flagged.numel() == 0:
            return 0.0
        return float(torch.isin(self.flagged, poisoned).double().mean())


def sanitise(detector: Detector, data: ImageDataset, *, chunk: int = 2000) -> Sanitised:
    """Scores every sample of ``data`` with the fitted ``detector`` and drops the flagged ones.

    Example:
        >>> from advparams.data.synthetic import make_synthetic
        >>> from advparams.detectors import DETECTORS
        >>> from advparams.models import build_model
        >>> data = make_synthetic(120)
        >>> net = build_model("lenet", {"num_classes": 10, "in_channels": 1, "input_size": 16}, seed=0)
        >>> det = DETECTORS.build("strip", {"overlays": 4, "calibration": 20}).fit(net, data)
        >>> s = sanitise(det, data)
        >>> len(s.data) + s.flagged.numel() == len(data)
        True
    """
    import time

    start = time.perf_counter()
    assert detector.threshold is not None, "fit the detector first"
    scores = torch.cat(
        [
            detector.score(data.tensors(torch.arange(i, min(i + chunk, len(data))))[0])
            for i in range(0, len(data), chunk)
        ]
    )
    flag = scores > detector.threshold
    kept = torch.nonzero(~flag).flatten()
    return Sanitised(data.subset(kept), kept, torch.nonzero(flag).flatten(), scores, time.perf_counter() - start)


__all__ = ["Sanitised", "sanitise"]
