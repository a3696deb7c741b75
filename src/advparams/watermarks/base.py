"""The watermark family's shared parts: the verification result and threshold calibration.

A watermark is verified by querying the suspect model with the key samples and counting
how many it answers with the watermark label (``score`` = that share). An unrelated model
also matches some key samples by chance, so the decision threshold is set from *null
models* (independently trained models that never saw the watermark): their match rate
``p0`` gives the chance a null model reaches ``k`` of ``n`` matches, a binomial tail, and
the threshold is the smallest share whose tail is at most the stated false-positive rate
(and above every null model actually observed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from advparams.errors import AdvParamsError


@dataclass(frozen=True)
class Verification:
    """The outcome of verifying a watermark in a suspect model.

    Attributes:
        score: share of the key samples answered with the watermark label, in [0, 1].
        threshold: the share at or above which the watermark counts as present.
        p_value: chance that a model without the watermark scores at least ``score``
            (binomial tail at the null match rate).
        decision: ``score >= threshold``.
    """

    score: float
    threshold: float
    p_value: float
    decision: bool


def binomial_tail(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, exactly (sums in log space).

    Example:
        >>> round(binomial_tail(2, 3, 0.5), 4)
        0.5
        >>> binomial_tail(0, 10, 0.3)
        1.0
    """
    if n < 0 or not 0.0 <= p <= 1.0:
        raise AdvParamsError(f"binomial tail needs n >= 0 and p in [0, 1], got n={n}, p={p}")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p == 0.0:
        return 0.0
    if p == 1.0:
        return 1.0
    logs = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)
        for i in range(k, n + 1)
    ]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


@dataclass(frozen=True)
class Calibration:
    """A decision threshold set from null models.

    Attributes:
        threshold: the share of key samples at or above which the watermark is present.
        null_rate: the null models' pooled match rate ``p0`` (with a +1/+2 prior, so never 0).
        fpr: the false-positive rate the threshold was set for.
        num_queries: key samples per verification.
        null_scores: the null models' observed scores.
    """

    threshold: float
    null_rate: float
    fpr: float
    num_queries: int
    null_scores: tuple[float, ...]

    def verify(self, matches: int) -> Verification:
        """The verification of a model that answered ``matches`` of the key samples."""
        if not 0 <= matches <= self.num_queries:
            raise AdvParamsError(f"matches must be in [0, {self.num_queries}], got {matches}")
        score = matches / self.num_queries
        p_value = binomial_tail(matches, self.num_queries, self.null_rate)
        return Verification(score, self.threshold, p_value, score >= self.threshold)


def calibrate(null_scores: Sequence[float], num_queries: int, fpr: float = 1e-6) -> Calibration:
    """The threshold for ``num_queries`` key samples at false-positive rate ``fpr``.

    ``null_scores`` are the shares that null models matched. Their pooled rate (with a
    +1 match / +2 queries prior, so that a perfectly clean null set does not give a zero
    rate) is the null match rate ``p0``; the threshold is the smallest ``k / n`` with
    ``P(Binomial(n, p0) >= k) <= fpr`` that is also above the largest null score.

    Example:
        >>> c = calibrate([0.0, 0.02, 0.01, 0.0, 0.01], num_queries=100, fpr=1e-6)
        >>> 0.02 < c.threshold < 0.2, c.verify(100).decision, c.verify(3).decision
        (True, True, False)
    """
    if num_queries < 1:
        raise AdvParamsError(f"num_queries must be at least 1, got {num_queries}")
    if not null_scores:
        raise AdvParamsError("calibration needs the scores of at least one null model")
    if not 0.0 < fpr < 1.0:
        raise AdvParamsError(f"fpr must be in (0, 1), got {fpr}")
    if any(not 0.0 <= s <= 1.0 for s in null_scores):
        raise AdvParamsError("null scores are shares in [0, 1]")
    matches = sum(round(s * num_queries) for s in null_scores)
    p0 = (matches + 1) / (len(null_scores) * num_queries + 2)
    floor = max(round(s * num_queries) for s in null_scores) + 1
    for k in range(floor, num_queries + 1):
        if binomial_tail(k, num_queries, p0) <= fpr:
            return Calibration(k / num_queries, p0, fpr, num_queries, tuple(float(s) for s in null_scores))
    raise AdvParamsError(
        f"no threshold reaches a false-positive rate of {fpr:g} with {num_queries} key samples "
        f"(null match rate {p0:.3f}): use more key samples"
    )
