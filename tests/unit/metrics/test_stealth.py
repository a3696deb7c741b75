"""Stealth metrics, checked by hand and against SciPy as an independent reference."""

import math

import pytest
import torch

from advparams.keys import Key
from advparams.metrics.stealth import kolmogorov_sf, ks_2samp, stealth_summary, value_stealth

scipy_stats = pytest.importorskip("scipy.stats")
scipy_special = pytest.importorskip("scipy.special")


@pytest.mark.parametrize(("n", "m", "shift"), [(500, 500, 0.0), (800, 300, 0.1), (2000, 2000, 0.05), (50, 70, 1.0)])
def test_ks_matches_scipy(n, m, shift) -> None:
    g = torch.Generator().manual_seed(n + m)
    a, b = torch.randn(n, generator=g), torch.randn(m, generator=g) + shift
    d, p = ks_2samp(a, b)
    ref = scipy_stats.ks_2samp(a.numpy(), b.numpy(), method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    en = math.sqrt(n * m / (n + m))
    assert p == pytest.approx(float(scipy_special.kolmogorov(en * d)), abs=1e-9)
    # SciPy's own asymptotic p-value uses a finite-n correction; it agrees loosely.
    assert p == pytest.approx(ref.pvalue, abs=0.05)


def test_kolmogorov_sf_edges() -> None:
    assert kolmogorov_sf(0.0) == 1.0 and kolmogorov_sf(-1.0) == 1.0
    assert kolmogorov_sf(5.0) < 1e-20
    for x in (0.3, 0.5, 1.0, 1.5, 2.0):
        assert kolmogorov_sf(x) == pytest.approx(float(scipy_special.kolmogorov(x)), abs=1e-12)


def _model(values):
    net = torch.nn.Linear(len(values), 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([values]))
    return net


def test_value_stealth_by_hand() -> None:
    original = _model([0.0, 1.0, 2.0, 3.0, 4.0])
    locked = _model([0.0, 1.0, 9.0, 3.0, 4.0])
    key = Key.from_models(original, locked, scheme="manual")
    (v,) = value_stealth(locked, key)
    t = torch.tensor([0.0, 1.0, 9.0, 3.0, 4.0], dtype=torch.float64)
    assert v.index == 2 and v.original == 2.0 and v.locked == 9.0
    assert v.z_score == pytest.approx(float((9.0 - t.mean()) / t.std()))
    assert v.percentile == 80.0 and v.extremeness == 20.0  # 4 of 5 values below it


def test_summary_flags_a_visible_lock_and_not_an_invisible_one() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2000, generator=g)
    original = _model(w.tolist())
    # A visible lock: a quarter of the weights shifted by 1 std.
    shifted = w.clone()
    shifted[:500] += 1.0
    visible = Key.from_models(original, _model(shifted.tolist()), scheme="manual")
    s = stealth_summary(original, _model(shifted.tolist()), visible)
    assert s["tensors_rejected"] == 1 and s["min_p_value"] < 1e-6
    # A lock that swaps two values leaves the distribution unchanged: D = 0, p = 1.
    swapped = w.clone()
    swapped[[0, 1]] = swapped[[1, 0]]
    quiet = Key.from_models(original, _model(swapped.tolist()), scheme="manual")
    s = stealth_summary(original, _model(swapped.tolist()), quiet)
    assert s["tensors_rejected"] == 0 and s["min_p_value"] == 1.0 and len(s["per_value"]) == 2


def test_extreme_values_are_counted() -> None:
    w = torch.linspace(-1, 1, 1000)
    original = _model(w.tolist())
    locked_w = w.clone()
    locked_w[500] = 5.0  # the new max: 999 of 1000 values below it, extremeness 0.1
    key = Key.from_models(original, _model(locked_w.tolist()), scheme="manual")
    s = stealth_summary(original, _model(locked_w.tolist()), key)
    assert s["share_extreme_1pct"] == 1.0 and s["max_abs_z"] > 5


def test_ks_needs_data() -> None:
    with pytest.raises(ValueError):
        ks_2samp(torch.tensor([]), torch.tensor([1.0]))
