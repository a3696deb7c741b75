"""Screening metrics: a threshold for a stated false-rejection rate, detection rates, ROC
curves and their area, and the MAD anomaly index of Neural Cleanse.

Scores follow one convention throughout: **higher means more suspicious** (more likely a
triggered input, a backdoored label, ...). A sample is flagged when its score is strictly
above the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from advparams.errors import AdvParamsError


def _vector(scores: torch.Tensor | Sequence[float], what: str) -> torch.Tensor:
    t = torch.as_tensor(scores, dtype=torch.float64).flatten()
    if t.numel() == 0:
        raise AdvParamsError(f"no {what} scores")
    if not bool(torch.isfinite(t).all()):
        raise AdvParamsError(f"the {what} scores hold NaN or infinite values")
    return t


def threshold_at_frr(clean_scores: torch.Tensor | Sequence[float], frr: float) -> float:
    """The smallest threshold that flags at most ``frr`` of ``clean_scores``.

    With ``n`` distinct scores exactly ``floor(frr * n)`` of them lie above it; tied scores
    are flagged or kept together, so ties can only lower the rate.

    Example:
        >>> threshold_at_frr([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], 0.2)
        0.8
    """
    if not 0.0 <= frr < 1.0:
        raise AdvParamsError(f"the false-rejection rate must be in [0, 1), got {frr}")
    s = torch.sort(_vector(clean_scores, "clean")).values
    n = int(s.numel())
    allowed = int(frr * n + 1e-9)  # scores that may lie above the threshold
    return float(s[n - 1 - allowed])


def flag_rate(scores: torch.Tensor | Sequence[float], threshold: float) -> float:
    """The share of ``scores`` strictly above ``threshold``."""
    t = _vector(scores, "")
    return float((t > threshold).double().mean())


def roc_curve(
    clean_scores: torch.Tensor | Sequence[float], triggered_scores: torch.Tensor | Sequence[float]
) -> tuple[list[float], list[float]]:
    """False-positive rates (clean flagged) and true-positive rates (triggered flagged) at
    every threshold, from (0, 0) to (1, 1).

    Example:
        >>> roc_curve([0.0, 1.0], [2.0, 3.0])
        ([0.0, 0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0, 1.0])
    """
    neg, pos = _vector(clean_scores, "clean"), _vector(triggered_scores, "triggered")
    thresholds = torch.unique(torch.cat([neg, pos]), sorted=True).flip(0)
    fpr, tpr = [0.0], [0.0]
    for t in thresholds:
        fpr.append(float((neg >= t).double().mean()))
        tpr.append(float((pos >= t).double().mean()))
    return fpr, tpr


def roc_auc(clean_scores: torch.Tensor | Sequence[float], triggered_scores: torch.Tensor | Sequence[float]) -> float:
    """The area under the ROC curve: the chance that a triggered input scores above a clean
    one, ties counting half (the Mann-Whitney statistic).

    Example:
        >>> roc_auc([0.0, 1.0, 2.0], [1.0, 3.0])
        0.75
    """
    neg, pos = _vector(clean_scores, "clean"), _vector(triggered_scores, "triggered")
    allv = torch.cat([neg, pos])
    order = torch.argsort(allv, stable=True)
    ranks = torch.empty_like(allv)
    sorted_v = allv[order]
    # average ranks over ties (1-based)
    _, inverse, counts = torch.unique_consecutive(sorted_v, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    avg = ends - (counts.double() - 1) / 2
    ranks[order] = avg[inverse]
    n_pos, n_neg = pos.numel(), neg.numel()
    u = float(ranks[neg.numel() :].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def anomaly_index(norms: torch.Tensor) -> torch.Tensor:
    """How far below the median each value lies, in units of 1.4826 x MAD (Neural Cleanse).

    Example:
        >>> idx = anomaly_index(torch.tensor([10.0, 11.0, 9.0, 10.5, 2.0]))
        >>> int(idx.argmax()), bool(idx.max() > 2)
        (4, True)
    """
    med = norms.median()
    mad = (norms - med).abs().median() * 1.4826
    return (med - norms) / mad.clamp_min(1e-12)


__all__ = ["anomaly_index", "flag_rate", "roc_auc", "roc_curve", "threshold_at_frr"]
