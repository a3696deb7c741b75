"""The lock's target on unseen data: a check set the search never sees, and the exact
binomial bound that certifies the target from it."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from advparams.metrics.binomial import binomial_cdf, binomial_upper_bound
from advparams.schemes import AdvParams, Hardened
from advparams.schemes.advparams_search import certifiable_rate
from advparams.schemes.lock_samples import LockBatches, check_batches
from advparams.testing import tiny_data, tiny_trained_classifier


@pytest.mark.parametrize(("x", "n", "level"), [(0, 10, 0.95), (5, 96, 0.95), (104, 1000, 0.95), (37, 200, 0.99)])
def test_the_upper_bound_is_clopper_pearsons(x, n, level) -> None:
    assert binomial_upper_bound(x, n, level) == pytest.approx(stats.beta.ppf(level, x + 1, n - x), abs=1e-8)
    assert binomial_cdf(x, n, 0.3) == pytest.approx(stats.binom.cdf(x, n, 0.3), rel=1e-9)


@pytest.mark.parametrize("n", [192, 872, 1000])
def test_the_certifiable_rate_is_the_largest_that_certifies(n) -> None:
    rate = certifiable_rate(0.12, n, 0.95)
    x = round(rate * n)
    assert binomial_upper_bound(x, n, 0.95) <= 0.12 < binomial_upper_bound(x + 1, n, 0.95)


def test_the_bound_covers_the_true_rate_at_its_level() -> None:
    """Over many samples of Binomial(400, 0.12), the bound is below 0.12 at most 5 % of
    the time (the guarantee the lock's check rests on)."""
    g = torch.Generator().manual_seed(0)
    draws = torch.binomial(torch.full((4000,), 400.0), torch.full((4000,), 0.12), generator=g).long().tolist()
    below = sum(binomial_upper_bound(x, 400, 0.95) <= 0.12 for x in set(draws) for _ in range(draws.count(x)))
    assert below / len(draws) <= 0.05


def test_the_check_set_is_apart_from_the_lock_samples_and_leaves_them_as_they_were() -> None:
    data = tiny_data(600)
    lock = LockBatches(data, 300, 100, torch.Generator().manual_seed(3), torch.device("cpu"))
    again = LockBatches(data, 300, 100, torch.Generator().manual_seed(3), torch.device("cpu"))
    check = check_batches(data, lock, 200, torch.Generator().manual_seed(3), torch.device("cpu"))
    assert check is not None and check.n == 200
    assert not set(check.indices.tolist()) & set(lock.indices.tolist())
    assert torch.equal(lock.indices, again.indices)
    assert torch.bincount(check.y, minlength=10).tolist() == [20] * 10  # class-balanced
    assert check_batches(data, LockBatches(data, 600, 100, torch.Generator(), torch.device("cpu")), 10,
                         torch.Generator(), torch.device("cpu")) is None  # fmt: skip


@pytest.fixture(scope="module")
def trained():
    return tiny_trained_classifier(seed=0)


def test_a_lock_whose_check_cannot_certify_the_target_misses_it(trained) -> None:
    model, data = trained
    # 20 check samples cannot certify 12 %: even 0 right gives a bound of 13.9 %
    res = AdvParams(num_samples=300, check_samples=20, max_params=500).lock(model, data)
    rep = res.report
    assert rep.check_samples == 20 and rep.check_bound is not None and rep.check_bound > rep.target_accuracy
    assert rep.certified is False and not rep.target_met
    assert "not certified on unseen data" in (rep.problem() or "")
    # the same lock with the check of the default size is certified ...
    res = AdvParams(num_samples=300, max_params=500).lock(model, data)
    assert res.report.check_samples == 300 and res.report.certified is True and res.report.target_met
    # ... and without a check says nothing either way
    res = AdvParams(num_samples=300, max_params=500, check_samples=0).lock(model, data)
    assert res.report.certified is None and res.report.check_samples == 0


def test_a_check_with_no_data_left_is_a_miss_that_says_why(trained) -> None:
    model, data = trained
    res = Hardened(num_samples=len(data)).lock(model, data)
    assert res.report.certified is False and res.report.check_samples == 0 and not res.report.target_met
    assert "no samples beyond" in (res.report.problem() or "")


def test_lock_exits_4_and_writes_nothing_when_the_check_cannot_certify(capsys, tmp_path) -> None:
    from advparams.cli import main

    common = ["--dataset", "synthetic", "--device", "cpu"]
    assert main(["train", "--model", "lenet", "--epochs", "2", "--out", str(tmp_path / "m"), *common, "--json"]) == 0
    capsys.readouterr()
    lock = ["lock", str(tmp_path / "m"), "--out", str(tmp_path / "L"), "--key", str(tmp_path / "k.key")]
    code = main([*lock, "--set", "check_samples=20"])
    err = capsys.readouterr().err
    assert code == 4 and "not certified on unseen data" in err and "--set check_samples=N" in err
    assert not (tmp_path / "L").exists() and not (tmp_path / "k.key").exists()
    assert main([*lock, "--json"]) == 0  # the default check (1,000 of the 2,000 training images) certifies it
    import json

    s = json.loads(capsys.readouterr().out)
    assert s["certified"] is True and s["check_samples"] == 1000 and s["check_bound"] <= s["target_accuracy"]


def test_a_failed_check_searches_again_with_a_lower_held_out_threshold(trained, monkeypatch) -> None:
    """When the check does not certify the target, the lock searches again from the
    original with the held-out threshold lowered, each check at a Bonferroni share of
    the level, and reports how many searches it took."""
    import dataclasses

    from advparams.schemes import locking

    model, data = trained
    real, calls, shifts = locking.LockSetup.certify, [], []

    def fail_first(self, work):
        shifts.append(self.shift)
        out = real(self, work)
        calls.append(out)
        return dataclasses.replace(out, certified=False) if len(calls) == 1 else out

    monkeypatch.setattr(locking.LockSetup, "certify", fail_first)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # a target whose second check (99 %) on the 300 check samples can still certify chance
    res = AdvParams(num_samples=300, max_params=500, target_accuracy=0.2).lock(model, data)
    rep = res.report
    assert len(calls) == 2 and shifts[0] == 0 and shifts[1] >= locking.RETRY_EXTRA
    assert rep.check_tries == 2 and rep.certified is True and rep.target_met
    assert rep.check_level == pytest.approx(1 - 0.2 * 0.05)  # the second check spends the last fifth
    # the second search stopped at the lowered held-out threshold
    assert rep.stopped == "target" and rep.holdout_accuracy_after is not None
    assert rep.holdout_accuracy_after <= certifiable_rate(rep.target_accuracy, rep.holdout_samples, 0.95) - shifts[1]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the input is untouched
    # one try: the level is the config's and a failed check is final; so where a second
    # check could not certify a model at chance (300 check samples at 99 % for 12 %)
    for options in ({"check_tries": 1, "target_accuracy": 0.2}, {}):
        calls.clear()
        res = AdvParams(num_samples=300, max_params=500, **options).lock(model, data)
        assert len(calls) == 1 and res.report.check_tries == 1 and res.report.certified is False
        assert res.report.check_level == pytest.approx(0.95) and "1 search)" in (res.report.problem() or "")
    with pytest.raises(ValueError, match="check_tries"):
        AdvParams(check_tries=0)


def test_a_second_search_counts_the_passes_of_both(trained, monkeypatch) -> None:
    import dataclasses

    from advparams.schemes import locking

    model, data = trained
    one = AdvParams(num_samples=300, max_params=500, target_accuracy=0.2).lock(model, data).report
    real = locking.LockSetup.certify
    monkeypatch.setattr(
        locking.LockSetup,
        "certify",
        lambda self, work: (lambda c: dataclasses.replace(c, certified=False) if self.attempt == 1 else c)(
            real(self, work)
        ),
    )
    two = AdvParams(num_samples=300, max_params=500, target_accuracy=0.2).lock(model, data).report
    assert (
        two.check_tries == 2 and two.forward_passes > one.forward_passes and two.backward_passes > one.backward_passes
    )
