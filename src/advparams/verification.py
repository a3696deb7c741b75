"""Ownership decisions shared by the watermark and fingerprint families.

A :class:`Verification` is what verifying a watermark or a fingerprint in a suspect model
returns. Watermarks count matches of key samples and set their thresholds with a binomial
tail (:func:`advparams.watermarks.calibrate`); fingerprints give a continuous similarity,
whose threshold :func:`calibrate_scores` sets from the similarities of *null models*
(independently trained models that are not copies): a normal fit to their scores
[inferred: the papers give no rule], and never at or below the highest null score seen.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from advparams.errors import AdvParamsError

MIN_SPREAD = 1e-3
"""The smallest standard deviation a null fit is given: five null models that happen to
score alike must not make any score above them infinitely significant."""


@dataclass(frozen=True)
class Verification:
    """The outcome of verifying a watermark or fingerprint in a suspect model.

    Attributes:
        score: the evidence (share of key samples answered with the watermark label; a
            fingerprint's similarity).
        threshold: the score at or above which the suspect counts as a copy.
        p_value: chance that a model that is not a copy scores at least ``score``.
        decision: ``score >= threshold``.
    """

    score: float
    threshold: float
    p_value: float
    decision: bool


@dataclass(frozen=True)
class ScoreCalibration:
    """A decision threshold for a continuous similarity, set from null models.

    Attributes:
        threshold: the similarity at or above which a suspect is declared a copy.
        fpr: the false-positive rate it was set for.
        null_mean: mean of the null models' scores.
        null_std: their standard deviation (at least :data:`MIN_SPREAD`).
        null_scores: the scores themselves.
    """

    threshold: float
    fpr: float
    null_mean: float
    null_std: float
    null_scores: tuple[float, ...]

    def p_value(self, score: float) -> float:
        """``P(S >= score)`` for a null score ``S`` of the fitted normal."""
        return 0.5 * math.erfc((score - self.null_mean) / (self.null_std * math.sqrt(2.0)))

    def verify(self, score: float) -> Verification:
        """The verification of a suspect whose similarity is ``score``."""
        if not math.isfinite(score):
            raise AdvParamsError(f"a similarity must be a finite number, got {score}")
        return Verification(float(score), self.threshold, self.p_value(score), score >= self.threshold)


def calibrate_scores(null_scores: Sequence[float], fpr: float = 0.01) -> ScoreCalibration:
    """The threshold at false-positive rate ``fpr`` from the similarities of null models.

    The null scores are fitted with a normal distribution (sample mean and standard
    deviation, the latter at least :data:`MIN_SPREAD`); the threshold is its upper
    ``fpr`` quantile, raised to just above the largest null score when that is higher,
    so a null model of the calibration set is never a positive.

    Raises:
        AdvParamsError: fewer than two null scores, a score that is not finite, or
            ``fpr`` outside (0, 1).

    Example:
        >>> c = calibrate_scores([0.20, 0.25, 0.22, 0.18, 0.24], fpr=0.01)
        >>> round(c.threshold, 3), c.verify(0.9).decision, c.verify(0.24).decision
        (0.285, True, False)
    """
    scores = [float(s) for s in null_scores]
    if len(scores) < 2:
        raise AdvParamsError("a threshold needs the scores of at least two null models")
    if any(not math.isfinite(s) for s in scores):
        raise AdvParamsError("null scores must be finite numbers")
    if not 0.0 < fpr < 1.0:
        raise AdvParamsError(f"fpr must be in (0, 1), got {fpr}")
    mean = statistics.fmean(scores)
    std = max(statistics.stdev(scores), MIN_SPREAD)
    quantile = mean + std * statistics.NormalDist().inv_cdf(1.0 - fpr)
    highest = max(scores)
    threshold = max(quantile, math.nextafter(highest, math.inf))
    return ScoreCalibration(threshold, fpr, mean, std, tuple(scores))


__all__ = ["MIN_SPREAD", "ScoreCalibration", "Verification", "calibrate_scores"]
