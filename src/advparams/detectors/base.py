"""What every backdoor detector shares: the registry, the one interface and its calibration.

A detector is built from its configuration only. :meth:`Detector.fit` gets the suspect
model and some clean data the defender trusts; it keeps a frozen copy of the model (the
input is never changed), learns what the method needs on part of the clean data and
sets its threshold on the rest (``calibration`` held-out samples) so that the stated
share ``frr`` of clean inputs is rejected. Then :meth:`Detector.score` gives every input
a score (higher: more likely to carry a trigger) and :meth:`Detector.detect` flags the
inputs whose score lies above the threshold.

Inputs are what the model takes: normalised image tensors ``[N, C, H, W]``; a detector
that works in pixel units (an L2 budget, a mask over pixels) maps them back with the
clean data's normalisation (:func:`advparams.data.base.normalisation`).
"""

from __future__ import annotations

import copy
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from advparams.data.base import DataLike, gather, normalisation, num_examples
from advparams.devices import model_device, model_float_dtype
from advparams.errors import AdvParamsError
from advparams.metrics.screening import flag_rate, threshold_at_frr
from advparams.registry import Configurable, Registry

C = TypeVar("C")

DETECTORS: Registry[Any] = Registry("detector")

FIT_SAMPLES = 10_000
"""At most this many clean samples (beyond the calibration ones, drawn at random) serve a
detector's own fitting; the rest of a large clean set is not read into memory."""

Facts = dict[str, torch.Tensor]
"""Per-input facts a detector can report beside its score (``l2``, ``moved``, ...)."""


def check_common(frr: float, calibration: int, batch_size: int) -> None:
    """Validates the options every detector's configuration has."""
    if not 0.0 <= frr < 1.0:
        raise ValueError(f"frr must be in [0, 1), got {frr}")
    if calibration < 10:
        raise ValueError(f"calibration must be at least 10 samples, got {calibration}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")


class Detector(Configurable[C], ABC):
    """Base class of backdoor detectors (see the module docstring).

    Attributes (after :meth:`fit`):
        model: the frozen copy of the suspect model the detector queries.
        threshold: inputs scoring above it are flagged.
        calibration_scores: the scores of the held-out clean inputs the threshold was set on.
        fit_seconds: how long :meth:`fit` took.
        inspects_model: True for detectors that also judge the model as a whole
            (their :attr:`inspection` holds the verdict).
    """

    inspects_model: ClassVar[bool] = False

    def __init__(self, config: C | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        super().__init__(config, **options)
        self.model: nn.Module | None = None
        self.threshold: float | None = None
        self.calibration_scores: torch.Tensor | None = None
        self.fit_seconds = 0.0
        self.mean = torch.zeros(1, 1, 1)
        self.std = torch.ones(1, 1, 1)

    # -- the interface ------------------------------------------------------------------
    def fit(
        self,
        model: nn.Module,
        clean_data: DataLike,
        *,
        generator: torch.Generator | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Detector[C]:
        """Learns what the detector needs from ``clean_data`` and calibrates its threshold.

        Args:
            model: the suspect classifier; it is not changed (a frozen copy is kept).
            clean_data: clean inputs the defender trusts; ``calibration`` of them (drawn
                at random) set the threshold, the others (at most :data:`FIT_SAMPLES`)
                serve the method itself.
            generator: the draws (which samples calibrate, overlays, starts); default:
                seeded from the configuration's ``seed``.
            progress: called with a line of text as the work goes on.

        Returns:
            ``self``, fitted.

        Raises:
            AdvParamsError: too little clean data, or inputs that are not images.
        """
        start = time.perf_counter()
        cfg: Any = self.config
        n = num_examples(clean_data)
        if n < cfg.calibration + 1:
            raise AdvParamsError(
                f"the {self.name} detector needs more than {cfg.calibration} clean samples "
                f"(calibration) and some to fit on; it got {n}"
            )
        gen = generator if generator is not None else torch.Generator().manual_seed(int(getattr(cfg, "seed", 0)))
        order = torch.randperm(n, generator=gen)[: cfg.calibration + FIT_SAMPLES]
        x, y = gather(clean_data, order)
        if x.dim() != 4:
            raise AdvParamsError(f"the {self.name} detector needs image inputs [N, C, H, W]")
        net = copy.deepcopy(model).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.model = net
        mean, std = normalisation(clean_data, int(x.shape[1]))
        device, dtype = model_device(net), model_float_dtype(net)
        self.mean, self.std = mean.to(device=device, dtype=dtype), std.to(device=device, dtype=dtype)
        calib_x, fit_x, fit_y = x[: cfg.calibration], x[cfg.calibration :], y[cfg.calibration :]
        self._fit(fit_x, fit_y, gen, progress)
        self.calibration_scores = self.score(calib_x)
        self.threshold = threshold_at_frr(self.calibration_scores, cfg.frr)
        self.fit_seconds = time.perf_counter() - start
        return self

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The score of every input of ``x`` (on CPU, float64); higher: more suspicious."""
        return self.score_with_facts(x)[0]

    def score_with_facts(self, x: torch.Tensor) -> tuple[torch.Tensor, Facts]:
        """:meth:`score`, and the per-input facts the method reports (e.g. ``l2``)."""
        net = self._fitted()
        if x.dim() != 4:
            raise AdvParamsError(f"the {self.name} detector needs image inputs [N, C, H, W]")
        device, dtype = model_device(net), model_float_dtype(net)
        scores: list[torch.Tensor] = []
        facts: dict[str, list[torch.Tensor]] = {}
        bs = int(self.config.batch_size)  # type: ignore[attr-defined]
        for start in range(0, int(x.shape[0]), bs):
            s, f = self._score(x[start : start + bs].to(device=device, dtype=dtype))
            scores.append(s.detach().double().cpu())
            for k, v in f.items():
                facts.setdefault(k, []).append(v.detach().cpu())
        if not scores:
            return torch.empty(0, dtype=torch.float64), {}
        return torch.cat(scores), {k: torch.cat(v) for k, v in facts.items()}

    def detect(self, x: torch.Tensor) -> torch.Tensor:
        """Which inputs of ``x`` the detector flags as triggered (a bool tensor on CPU)."""
        self._fitted()
        assert self.threshold is not None
        return self.score(x) > self.threshold

    def threshold_for(self, frr: float) -> float:
        """The threshold that would reject ``frr`` of the calibration inputs."""
        if self.calibration_scores is None:
            raise AdvParamsError(f"the {self.name} detector is not fitted: call fit(model, clean_data) first")
        return threshold_at_frr(self.calibration_scores, frr)

    def calibration_frr(self) -> float:
        """The share of the calibration inputs the threshold rejects."""
        if self.calibration_scores is None or self.threshold is None:
            raise AdvParamsError(f"the {self.name} detector is not fitted: call fit(model, clean_data) first")
        return flag_rate(self.calibration_scores, self.threshold)

    @property
    def natural_threshold(self) -> float | None:
        """A threshold the method itself defines (its paper's decision rule), if any."""
        return None

    @property
    def inspection(self) -> dict[str, Any]:
        """The verdict on the model as a whole (detectors that :attr:`inspects_model`)."""
        return {}

    # -- what members implement -------------------------------------------------------
    @abstractmethod
    def _fit(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, progress: Callable[[str], None] | None
    ) -> None:
        """Learns what the method needs from clean inputs ``x`` (labels ``y``), on CPU."""

    @abstractmethod
    def _score(self, x: torch.Tensor) -> tuple[torch.Tensor, Facts]:
        """Scores one batch (on the model's device and dtype)."""

    def _fitted(self) -> nn.Module:
        if self.model is None:
            raise AdvParamsError(f"the {self.name} detector is not fitted: call fit(model, clean_data) first")
        return self.model

    def _pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised inputs as [0, 1] pixels."""
        return x * self.std + self.mean

    def _normalised(self, p: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels as the model's inputs."""
        return (p - self.mean) / self.std


__all__ = ["DETECTORS", "FIT_SAMPLES", "Detector", "Facts", "check_common"]
