"""Verification thresholds set from null models."""

import pytest
from scipy import stats

from advparams.errors import AdvParamsError
from advparams.watermarks.base import binomial_tail, calibrate


@pytest.mark.parametrize(("k", "n", "p"), [(0, 5, 0.3), (3, 10, 0.1), (40, 100, 0.2), (100, 100, 0.9), (7, 300, 0.01)])
def test_binomial_tail_matches_scipy(k, n, p) -> None:
    assert binomial_tail(k, n, p) == pytest.approx(float(stats.binom.sf(k - 1, n, p)), rel=1e-9, abs=1e-300)


def test_threshold_meets_the_rate_and_is_the_smallest() -> None:
    nulls = [0.0, 0.03, 0.01, 0.02, 0.0]
    c = calibrate(nulls, num_queries=100, fpr=1e-4)
    k = round(c.threshold * 100)
    assert binomial_tail(k, 100, c.null_rate) <= 1e-4 < binomial_tail(k - 1, 100, c.null_rate)
    assert c.threshold > max(nulls)
    assert c.null_rate == pytest.approx((6 + 1) / (500 + 2))
    # Every null model is rejected, a watermarked one accepted, with a tiny p-value.
    assert not any(c.verify(round(s * 100)).decision for s in nulls)
    v = c.verify(97)
    assert v.decision and v.p_value < 1e-4 and v.score == 0.97


def test_a_stricter_rate_raises_the_threshold() -> None:
    nulls = [0.05, 0.1, 0.08]
    loose, strict = calibrate(nulls, 200, fpr=1e-2), calibrate(nulls, 200, fpr=1e-9)
    assert strict.threshold > loose.threshold


def test_threshold_stays_above_an_outlying_null_model() -> None:
    c = calibrate([0.0, 0.0, 0.0, 0.0, 0.5], num_queries=100, fpr=0.5)
    assert c.threshold > 0.5


def test_bad_calibration_inputs() -> None:
    with pytest.raises(AdvParamsError, match="at least one null"):
        calibrate([], 100)
    with pytest.raises(AdvParamsError, match="more key samples"):
        calibrate([0.5, 0.6], num_queries=5, fpr=1e-9)
    with pytest.raises(AdvParamsError, match="fpr"):
        calibrate([0.0], 10, fpr=0.0)
    with pytest.raises(AdvParamsError, match="matches"):
        calibrate([0.0], 10).verify(11)
