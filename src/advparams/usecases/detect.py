"""Screening a checkpoint on disk for a backdoor: ``advparams detect``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from advparams.backdoors import load_trigger, normalise
from advparams.detectors import DETECTORS
from advparams.detectors.measure import defender_split, measure_detector
from advparams.errors import ConfigError
from advparams.imaging import read_image
from advparams.usecases.models import open_checkpoint


@dataclass(frozen=True)
class Screened:
    """What :func:`screen_checkpoint` found.

    Attributes:
        options: the detector's full configuration.
        inspection: the model inspection (detectors that inspect the model), else None.
        measured: TPR, FPR and AUC on triggered and clean test images (with a trigger).
        images: each image's path, score and whether it is flagged.
    """

    detector: str
    dataset: str
    options: Mapping[str, Any]
    clean_samples: int
    threshold: float
    calibration_frr: float
    fit_seconds: float
    anomaly_threshold: float | None = None
    inspection: Mapping[str, Any] | None = None
    measured: Mapping[str, Any] | None = None
    images: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


def _images(paths: Sequence[str], test: Any) -> torch.Tensor:
    """Image files as a normalised batch the model takes (each one's size checked)."""
    shape, pics = test.input_shape, []
    for path in paths:
        img = read_image(path, shape[0])
        if tuple(img.shape) != shape:
            raise ConfigError(f"{path} is {tuple(img.shape[1:])} pixels; the model takes {shape[1:]}")
        pics.append(img)
    return normalise(torch.stack(pics), test)


def screen_checkpoint(
    checkpoint: str | os.PathLike[str],
    *,
    detector: str,
    options: Mapping[str, Any] | None = None,
    clean_samples: int = 1000,
    trigger: str | os.PathLike[str] | None = None,
    samples: int = 500,
    frr: float = 0.05,
    images: Sequence[str] = (),
    dataset: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> Screened:
    """Fits registered ``detector`` on the last ``clean_samples`` test images of the
    checkpoint's data set; with ``trigger``, measures it on the first ``samples`` test
    images (:func:`advparams.detectors.measure.defender_split`); scores ``images``."""
    det = DETECTORS.build(detector, {**dict(options or {}), "frr": frr})
    opened = open_checkpoint(checkpoint, dataset=dataset, data_dir=data_dir, device=device, test=True,
                             unlocked="unlock it first")  # fmt: skip
    test, model, n = opened.test, opened.checkpoint.model, len(opened.test or ())
    assert test is not None
    scored = samples if trigger else 0
    if scored + clean_samples > n:
        what = f"--samples {samples} and --clean-samples" if trigger else "--clean-samples"
        raise ConfigError(
            f"{what} {clean_samples} need {scored + clean_samples} {opened.dataset} test images (disjoint); it has {n}"
        )
    measured_on, defender = defender_split(test, scored, clean_samples)
    det.fit(model, defender, progress=progress)
    anomaly = getattr(det.config, "anomaly_threshold", None)
    found = Screened(detector, opened.dataset, det.config_dict(), clean_samples, float(det.threshold),
                     det.calibration_frr(), det.fit_seconds, anomaly,
                     det.inspection if det.inspects_model else None)  # fmt: skip
    if trigger:
        m = measure_detector(det, model, load_trigger(trigger).trigger, measured_on, frrs=(frr,))
        found = _with(found, measured={k: v for k, v in m.items() if k != "inspection"})
    if images:
        scores = det.score(_images(images, test))
        flags = scores > det.threshold
        rows = [
            {"path": p, "score": float(s), "flagged": bool(f)} for p, s, f in zip(images, scores, flags, strict=True)
        ]
        found = _with(found, images=rows)
    return found


def _with(found: Screened, **changes: Any) -> Screened:
    return dataclasses.replace(found, **changes)


__all__ = ["Screened", "screen_checkpoint"]
