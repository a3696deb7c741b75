"""What makes the sign-flip lock what it is."""

import pytest
import torch

from advparams.attacks import FlipBack, FlipBackConfig
from advparams.metrics import accuracy
from advparams.schemes import SignFlip, SignFlipConfig
from advparams.testing import state_equal


def test_every_locked_value_is_an_original_value_negated(trained) -> None:
    model, data = trained
    res = SignFlip().lock(model, data)
    assert res.report.stopped == "target"
    assert accuracy(res.model, data) <= res.report.target_accuracy + 1e-6
    assert res.key.num_changed > 0
    for e in res.key.entries:
        assert torch.equal(e.locked, -e.original)
    # Magnitudes are untouched everywhere.
    for a, b in zip(model.parameters(), res.model.parameters(), strict=True):
        assert torch.equal(a.detach().abs(), b.detach().abs())


def test_budget_without_target_is_spent_in_chunks(trained) -> None:
    model, data = trained
    res = SignFlip(SignFlipConfig(max_params=25, chunk=10, target_accuracy=0.0)).lock(model, data)
    assert res.key.num_changed == 25
    assert res.report.rounds == 3  # 10 + 10 + 5


def test_flips_raise_the_loss_first_order(trained) -> None:
    # One round of one flip: the chosen weight is the one of largest g * (-2w).
    from advparams.schemes.lock_samples import LockBatches
    from advparams.schemes.locking import candidate_parameters, float_work_copy
    from advparams.schemes.signflip import flip_gains

    model, data = trained
    res = SignFlip(SignFlipConfig(max_params=1, chunk=1, target_accuracy=0.0)).lock(model, data)
    work = float_work_copy(model)
    batches = LockBatches(data, 1000, 1000, torch.Generator().manual_seed(0), torch.device("cpu"))
    cands = candidate_parameters(work)
    g = batches.gradients(work, cands, "capped-ce", 4.6)
    best = max(((n, float(flip_gains(g[n], p).max())) for n, p in cands.items()), key=lambda t: t[1])
    (entry,) = res.key.entries
    assert entry.name == best[0]
    assert float(flip_gains(g[entry.name], cands[entry.name]).reshape(-1)[entry.indices[0]]) == pytest.approx(best[1])


def test_flip_back_undoes_a_single_flip(trained) -> None:
    model, data = trained
    res = SignFlip(SignFlipConfig(max_params=1, chunk=1, target_accuracy=0.0)).lock(model, data)
    attacked = FlipBack(FlipBackConfig(num_samples=600, max_flips=1)).run(res.model, data)
    (entry,) = res.key.entries
    assert attacked.info["suspects"] == {entry.name: entry.indices.tolist()}
    assert state_equal(attacked.model, model)


def test_flip_back_stops_when_nothing_helps(trained) -> None:
    # On the trained (unlocked) model no single flip lowers the loss much; whatever it
    # flips must lower the attacker's loss, and it reports exactly what it flipped.
    model, data = trained
    res = FlipBack(FlipBackConfig(num_samples=600, max_flips=5)).run(model, data)
    changed = {
        n: torch.nonzero((a != b).reshape(-1)).reshape(-1).tolist()
        for (n, a), b in zip(model.named_parameters(), res.model.parameters(), strict=True)
    }
    assert {n: v for n, v in changed.items() if v} == res.info["suspects"]
    assert res.info["steps"] <= 5
