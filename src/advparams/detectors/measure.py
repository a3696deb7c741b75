"""How well a fitted detector tells triggered inputs from clean ones.

Triggered inputs are clean test images of every class but the sub-trigger's target with
the trigger applied (as the ASR counts them), for every sub-trigger; clean inputs are the
same test images untouched. The detector's thresholds come from its own calibration data
(held-out clean inputs), never from the inputs measured here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from advparams.backdoors.base import normalise
from advparams.backdoors.triggers import Trigger
from advparams.data.base import ImageDataset
from advparams.detectors.base import Detector
from advparams.metrics.accuracy import predict
from advparams.metrics.screening import flag_rate, roc_auc


def _rounded(t: torch.Tensor, keep: int) -> list[float]:
    return [float(f"{v:.6g}") for v in t[:keep].tolist()]


def defender_split(test: ImageDataset, scored: int, clean: int) -> tuple[ImageDataset, ImageDataset]:
    """The two disjoint parts of a test split a detector is measured with: the first
    ``scored`` images (triggered and scored) and the last ``clean`` (the defender's clean
    data the detector is fitted and calibrated on), in ``advparams detect`` as in the
    evaluation. The caller checks ``scored + clean <= len(test)`` (with its own words)."""
    n = len(test)
    if scored + clean > n:
        raise ValueError(f"{scored} + {clean} test images asked of {n}")
    return test.subset(torch.arange(scored)), test.subset(torch.arange(n - clean, n))


def measure_detector(
    detector: Detector[Any],
    model: nn.Module,
    trigger: Trigger,
    data: ImageDataset,
    *,
    frrs: Sequence[float] = (0.05, 0.01),
    keep_scores: int = 0,
) -> dict[str, Any]:
    """Scores ``data`` clean and triggered with the fitted ``detector``; JSON-ready.

    Args:
        detector: fitted on ``model`` (the backdoored model) with clean data disjoint from
            ``data``.
        model: the backdoored model (to tell which triggered inputs reach their target).
        trigger: its trigger.
        data: clean test images.
        frrs: the false-rejection rates whose calibrated thresholds are reported.
        keep_scores: how many clean and triggered scores to keep (for ROC curves and
            histograms; 0: none).

    Returns:
        ``tpr`` / ``fpr`` / ``tpr_effective`` (per rate, keyed by the rate as text): the
        share of triggered inputs flagged, of clean inputs flagged, and of the triggered
        inputs the model answers with the target that are flagged; ``auc``; the paper's
        own rule where the method has one (``natural_tpr``, ``natural_fpr``); the mean of
        each per-input fact on clean and triggered inputs (``clean_l2``, ``triggered_l2``,
        ...); ``seconds_per_image``; the counts; and the kept scores.
    """
    images, labels = data.images, data.labels
    clean_x = normalise(images, data)
    start = time.perf_counter()
    clean_s, clean_f = detector.score_with_facts(clean_x)
    trig_s, trig_f, effective = [], [], []
    for i, target in enumerate(trigger.targets):
        keep = labels != target
        x = normalise(trigger.apply(images[keep], i), data)
        s, f = detector.score_with_facts(x)
        trig_s.append(s)
        trig_f.append(f)
        effective.append(predict(model, (x, labels[keep])) == target)
    seconds = time.perf_counter() - start
    t_scores = torch.cat(trig_s)
    hit = torch.cat(effective)
    n_scored = int(clean_s.numel() + t_scores.numel())
    out: dict[str, Any] = {
        "tpr": {},
        "fpr": {},
        "tpr_effective": {},
        "thresholds": {},
        "auc": roc_auc(clean_s, t_scores),
        "clean_counted": int(clean_s.numel()),
        "triggered_counted": int(t_scores.numel()),
        "effective_counted": int(hit.sum()),
        "seconds_per_image": seconds / max(1, n_scored),
        "fit_seconds": detector.fit_seconds,
        "calibration_frr": detector.calibration_frr(),
    }
    for frr in frrs:
        thr = detector.threshold_for(frr)
        key = f"{frr:g}"
        out["thresholds"][key] = thr
        out["tpr"][key] = flag_rate(t_scores, thr)
        out["fpr"][key] = flag_rate(clean_s, thr)
        out["tpr_effective"][key] = flag_rate(t_scores[hit], thr) if bool(hit.any()) else None
    natural = detector.natural_threshold
    if natural is not None:
        out["natural_threshold"] = natural
        out["natural_tpr"] = flag_rate(t_scores, natural)
        out["natural_fpr"] = flag_rate(clean_s, natural)
    for k in clean_f:
        tf = torch.cat([f[k] for f in trig_f]).double()
        out[f"clean_{k}"] = float(clean_f[k].double().mean())
        out[f"triggered_{k}"] = float(tf.mean())
    if keep_scores:
        out["clean_scores"] = _rounded(clean_s, keep_scores)
        out["triggered_scores"] = _rounded(t_scores, keep_scores)
    if detector.inspects_model:
        out["inspection"] = detector.inspection
    return out


__all__ = ["defender_split", "measure_detector"]
