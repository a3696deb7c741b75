"""Thresholds for continuous similarities, calibrated on null models."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advparams.errors import AdvParamsError
from advparams.verification import MIN_SPREAD, calibrate_scores


def test_threshold_is_the_normal_quantile_of_the_null_scores() -> None:
    nulls = [0.30, 0.35, 0.40, 0.32, 0.38]
    c = calibrate_scores(nulls, fpr=0.01)
    mu, sd = statistics.fmean(nulls), statistics.stdev(nulls)
    assert c.threshold == pytest.approx(mu + 2.3263478740408408 * sd)
    assert c.p_value(c.threshold) == pytest.approx(0.01)
    assert c.verify(c.threshold).decision and not c.verify(c.threshold - 1e-9).decision
    assert c.p_value(0.9) < c.p_value(0.5) < c.p_value(0.3)


def test_the_threshold_is_never_at_or_below_a_null_score() -> None:
    c = calibrate_scores([0.1, 0.1, 0.1, 0.9], fpr=0.4)  # the quantile alone would sit below 0.9
    assert c.threshold > 0.9 and not c.verify(0.9).decision


def test_identical_null_scores_get_the_minimum_spread() -> None:
    c = calibrate_scores([0.5, 0.5, 0.5], fpr=1e-3)
    assert c.null_std == MIN_SPREAD and 0.5 < c.threshold < 0.51


@pytest.mark.parametrize("bad", [[], [0.5], [0.1, math.nan]])
def test_too_few_or_bad_scores_are_refused(bad) -> None:
    with pytest.raises(AdvParamsError):
        calibrate_scores(bad)


@pytest.mark.parametrize("fpr", [0.0, 1.0, -0.1])
def test_fpr_outside_the_open_interval_is_refused(fpr) -> None:
    with pytest.raises(AdvParamsError, match="fpr"):
        calibrate_scores([0.1, 0.2], fpr=fpr)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=2, max_size=20),
    st.floats(1e-6, 0.5),
)
def test_no_calibration_null_is_ever_declared_a_copy(nulls, fpr) -> None:
    c = calibrate_scores(nulls, fpr=fpr)
    assert all(not c.verify(s).decision for s in nulls)
    # p-values by hand: the upper tail of the normal fit (spread at least MIN_SPREAD)
    fit = statistics.NormalDist(statistics.fmean(nulls), max(statistics.stdev(nulls), MIN_SPREAD))
    for s in (min(nulls), max(nulls), c.threshold):
        assert c.p_value(s) == pytest.approx(1.0 - fit.cdf(s), abs=1e-9)
    # the threshold is at or beyond the fpr quantile: a score that clears it is that rare
    assert c.p_value(c.threshold) <= fpr * (1.0 + 1e-6)
