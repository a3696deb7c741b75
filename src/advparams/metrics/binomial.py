"""Exact binomial tails and the one-sided Clopper-Pearson upper bound (pure functions)."""

from __future__ import annotations

import math

from advparams.errors import AdvParamsError

__all__ = ["binomial_cdf", "binomial_tail", "binomial_upper_bound", "certifiable_rate"]


def _log_terms(lo: int, hi: int, n: int, p: float) -> list[float]:
    """``log P(X = i)`` for ``i`` in ``lo..hi`` (``0 < p < 1``)."""
    return [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)
        for i in range(lo, hi + 1)
    ]


def _sum_exp(logs: list[float]) -> float:
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


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
    return _sum_exp(_log_terms(k, n, n, p))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)``, exactly (sums the ``k + 1`` lower terms
    in log space, so it is quick for small ``k``).

    Example:
        >>> round(binomial_cdf(1, 3, 0.5), 4)
        0.5
    """
    if n < 0 or not 0.0 <= p <= 1.0:
        raise AdvParamsError(f"binomial cdf needs n >= 0 and p in [0, 1], got n={n}, p={p}")
    if k < 0:
        return 0.0
    if k >= n or p == 0.0:
        return 1.0
    if p == 1.0:
        return 0.0
    return _sum_exp(_log_terms(0, k, n, p))


def binomial_upper_bound(successes: int, n: int, level: float) -> float:
    """The one-sided Clopper-Pearson upper confidence bound on a success rate: the
    largest ``p`` with ``P(X <= successes) >= 1 - level`` for ``X ~ Binomial(n, p)``.

    Whatever the true rate ``p``, a rate above it is bounded below ``p`` with probability
    at most ``1 - level`` (Clopper and Pearson, Biometrika 1934), so "bound at most
    ``t``" certifies ``p <= t`` at that level. Found by bisection to 1e-9.

    Example:
        >>> round(binomial_upper_bound(0, 100, 0.95), 4)  # the "rule of three": about 3/n
        0.0295
        >>> binomial_upper_bound(10, 10, 0.95)
        1.0
    """
    if n < 1 or not 0 <= successes <= n or not 0.0 < level < 1.0:
        raise AdvParamsError(
            f"a binomial bound needs n >= 1, 0 <= successes <= n and a level in (0, 1), "
            f"got {successes} of {n} at {level}"
        )
    if successes == n:
        return 1.0
    alpha = 1.0 - level
    lo, hi = successes / n, 1.0
    while hi - lo > 1e-9:  # P(X <= successes; p) falls as p grows
        mid = (lo + hi) / 2
        if binomial_cdf(successes, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def certifiable_rate(target: float, n: int, level: float) -> float:
    """The largest share ``x / n`` whose one-sided Clopper-Pearson bound at ``level`` is
    at most ``target`` (-1 when not even 0 of ``n`` is).

    Example:
        >>> certifiable_rate(0.12, 1000, 0.95)
        0.102
    """
    x = min(n, math.floor(target * n))
    while x >= 0 and binomial_upper_bound(x, n, level) > target:
        x -= 1
    return x / n if x >= 0 else -1.0
