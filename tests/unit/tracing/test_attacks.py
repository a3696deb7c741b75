"""Attacks on leaked copies: the colluders' average, weight noise, and the adaptive
single-copy attacker who compares his copy with the locked model value by value."""

import pytest
import torch

from advparams.errors import KeyMismatchError
from advparams.keys import unlock
from advparams.schemes.hardened import Hardened
from advparams.testing import state_equal, tiny_trained_classifier
from advparams.tracing import MarkConfig, issue_user_key, trace_weights, user_plan
from advparams.tracing.attacks import average_copies, unmark_by_values, weight_noise

USERS = [f"user{i:03d}" for i in range(100)]
MARK = MarkConfig(positions=1024)


@pytest.fixture(scope="module")
def trained():
    return tiny_trained_classifier(seed=0)


def test_without_dither_one_copy_and_the_locked_model_give_every_mark_away(trained) -> None:
    # Why per-user keys need a dithered lock: a plain shuffle keeps the original's values.
    model, data = trained
    locked = Hardened(reproducible=True, draws=1).lock(model, data)
    with pytest.raises(KeyMismatchError, match="dither"):
        issue_user_key(locked.model, locked.key, USERS[0], MARK)
    # what the attacker would do with such a copy (built here by hand, as the plan would)
    from advparams.tracing.keys import code_secret
    from advparams.tracing.mark import mark_copy, mark_plan

    within = {s.name: s.positions(locked.key.secret) for s in locked.key.shuffles}
    mark = MarkConfig(positions=512)
    plan = mark_plan(model, code_secret(locked.key), mark, within=within)
    copy_ = mark_copy(model, plan, USERS[0])
    assert trace_weights(copy_, model, plan, USERS).accused == (USERS[0],)
    u = unmark_by_values(copy_, locked.model, mark.strength)
    assert u.found == mark.positions and u.changed == mark.positions
    assert state_equal(u.model, model)  # every mark found and the original value put back
    assert trace_weights(u.model, model, plan, USERS).accused == ()


def test_with_dither_the_adaptive_attacker_finds_nothing(trained) -> None:
    model, data = trained
    locked = Hardened(reproducible=True, draws=1, dither=23).lock(model, data)
    copy_ = unlock(locked.model, issue_user_key(locked.model, locked.key, USERS[5], MARK))
    u = unmark_by_values(copy_, locked.model, MARK.strength)
    assert u.found == 0 and u.changed == 0 and u.skipped >= 1
    assert state_equal(u.model, copy_)
    plan = user_plan(locked.key, model, MARK)
    assert trace_weights(u.model, model, plan, USERS).accused == (USERS[5],)


def test_average_and_noise(trained) -> None:
    model, _ = trained
    a, b = weight_noise(model, 0.1, 0), weight_noise(model, 0.1, 1)
    mean = average_copies([a, b])
    for name, t in mean.state_dict().items():
        expected = ((a.state_dict()[name].double() + b.state_dict()[name].double()) / 2).to(t.dtype)
        assert torch.equal(t, expected)
    # noise touches weight tensors only, by about the asked share of their spread
    for (name, t), t0 in zip(a.state_dict().items(), model.state_dict().values(), strict=True):
        if t.dim() >= 2:
            ratio = float((t.double() - t0.double()).std() / t0.double().std())
            assert 0.05 < ratio < 0.15, name
        else:
            assert torch.equal(t, t0), name
    assert state_equal(weight_noise(model, 0.1, 0), a)  # seeded
    with pytest.raises(ValueError):
        average_copies([])
