"""Selection re-run, re-optimisation of suspects, and partial key leakage."""

import copy

import pytest
import torch

from advparams.attacks import KeyLeak, KeyLeakConfig, OutlierReset, OutlierResetConfig, Retrace, RetraceConfig
from advparams.attacks._reoptimise import reoptimise_
from advparams.attacks.retrace import retrace_suspects
from advparams.errors import AdvParamsError
from advparams.keys import unlock
from advparams.metrics import accuracy, detection_scores
from advparams.testing import state_equal


def _flat(model, name):
    return dict(model.named_parameters())[name].detach().reshape(-1)


def test_reoptimise_trains_only_the_suspects_within_range(locked) -> None:
    model, key, data = locked
    x, y = data.tensors()
    work = copy.deepcopy(model)
    entry = key.entries[0]
    suspects = {entry.name: entry.indices}
    lo, hi = float(_flat(model, entry.name).min()), float(_flat(model, entry.name).max())
    reoptimise_(work, suspects, x, y, steps=30, lr=0.05)
    for name, p in model.named_parameters():
        diff = torch.nonzero((p.detach() != dict(work.named_parameters())[name].detach()).reshape(-1)).reshape(-1)
        if name == entry.name:
            assert set(diff.tolist()) <= set(entry.indices.tolist()) and diff.numel() > 0
            vals = _flat(work, name)[entry.indices]
            assert bool(((vals >= lo) & (vals <= hi)).all())
        else:
            assert diff.numel() == 0, name
    loss = torch.nn.functional.cross_entropy
    with torch.no_grad():
        assert float(loss(work.eval()(x), y)) < float(loss(model.eval()(x), y))


def test_retrace_finds_a_single_locked_weight(trained) -> None:
    from advparams import AdvParams, AdvParamsConfig

    model, data = trained
    x, y = data.tensors()
    # One adversarial change (a budget-1 lock): the steepest way back down the loss is
    # to undo it, so retrace must name exactly it.
    res = AdvParams(AdvParamsConfig(max_params=1)).lock(model, data)
    (entry,) = res.key.entries
    suspects = retrace_suspects(res.model, x, y, 1, selection="gain")
    assert {k: v.tolist() for k, v in suspects.items()} == {entry.name: entry.indices.tolist()}


def test_retrace_recovers_accuracy_and_reports_suspects(locked) -> None:
    model, key, data = locked
    res = Retrace(RetraceConfig(num_samples=200, num_suspects=30, steps=50)).run(model, data)
    assert res.info["num_suspects"] == 30 and res.info["num_samples"] == 200
    precision, recall = detection_scores(res.info["suspects"], key)
    assert 0.0 <= precision <= 1.0 and 0.0 <= recall <= 1.0
    assert accuracy(res.model, data) > accuracy(model, data)


@pytest.mark.parametrize("restore", ["median", "zero"])
def test_retrace_resets_exactly_the_suspects(locked, restore) -> None:
    model, _, data = locked
    res = Retrace(RetraceConfig(num_suspects=7, restore=restore)).run(model, data)
    changed = 0
    for name, p in model.named_parameters():
        d = (p.detach() != dict(res.model.named_parameters())[name].detach()).reshape(-1)
        sus = set(res.info["suspects"].get(name, []))
        assert set(torch.nonzero(d).reshape(-1).tolist()) <= sus
        changed += len(sus)
    assert changed == 7


def test_outlier_reoptimise_uses_data_and_trains_suspects(locked) -> None:
    model, key, data = locked
    cfg = OutlierResetConfig(method="extreme", extreme_fraction=0.1, reset="reoptimise", steps=20)
    res = OutlierReset(cfg).run(model, data)
    assert res.info["num_samples"] == min(256, len(data))
    suspects = res.info["suspects"]
    for name, p in model.named_parameters():
        d = torch.nonzero((p.detach() != dict(res.model.named_parameters())[name].detach()).reshape(-1))
        assert set(d.reshape(-1).tolist()) <= set(suspects.get(name, []))


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_leaked_key_restores_exactly_its_share(locked, fraction) -> None:
    model, key, data = locked
    res = KeyLeak(KeyLeakConfig(fraction=fraction, seed=2)).run(model, None, key=key)
    original = unlock(model, key)
    k = key.num_changed
    assert res.info["leaked"] == round(fraction * k) and res.info["entries"] == k
    restored = still_locked = 0
    for e in key.entries:
        vals = _flat(res.model, e.name)[e.indices]
        restored += int((vals == e.original).sum())
        still_locked += int((vals == e.locked).sum())
    assert restored == round(fraction * k) and still_locked == k - restored
    # Nothing outside the key moves.
    in_key = {e.name: set(e.indices.tolist()) for e in key.entries}
    for name, p in model.named_parameters():
        d = torch.nonzero((p.detach() != _flat(res.model, name).view_as(p)).reshape(-1)).reshape(-1)
        assert set(d.tolist()) <= in_key.get(name, set())
    if fraction == 1.0:
        assert state_equal(res.model, original)
    if fraction == 0.0:
        assert state_equal(res.model, model)


def test_leak_without_key_is_an_error(locked) -> None:
    model, _, data = locked
    with pytest.raises(AdvParamsError, match="needs the true key"):
        KeyLeak().run(model, data)


def test_data_attacks_without_data_are_clear_errors(locked) -> None:
    model, key, _ = locked
    with pytest.raises(AdvParamsError, match="needs the attacker's data"):
        Retrace().run(model, None)
    with pytest.raises(AdvParamsError, match="needs the attacker's data"):
        OutlierReset(OutlierResetConfig(reset="reoptimise")).run(model, None)


@pytest.mark.parametrize("attack", ["retrace", "flip-back"])
def test_scratch_baseline_runs_the_same_attack_on_a_fresh_model(locked, attack) -> None:
    from advparams.attacks import ATTACKS, reinitialised
    from advparams.attacks.flipback import flip_back

    model, _, data = locked
    options = {"num_samples": 64, **({"max_flips": 5} if attack == "flip-back" else {"num_suspects": 5, "steps": 5})}
    plain = ATTACKS.build(attack, options).run(model, data)
    both = ATTACKS.build(attack, {**options, "scratch": True}).run(model, data)
    assert plain.baselines == {}
    # The attack itself is unchanged by also running the baseline.
    assert state_equal(both.model, plain.model) and both.info == plain.info
    scratch = both.baselines["scratch"]
    assert not state_equal(scratch, both.model)
    # Redo the baseline by hand: the same samples, the same seed drawn after them.
    from advparams.attacks._reoptimise import attacker_batch

    gen = torch.Generator().manual_seed(0)
    x, y = attacker_batch(data, 64, gen, torch.device("cpu"))
    fresh = reinitialised(model, int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    if attack == "flip-back":
        again = flip_back(fresh, x, y, ATTACKS.build(attack, options).config)[0]
    else:
        again = ATTACKS.build(attack, options)._retrace(fresh, x, y)[0]
    assert state_equal(again, scratch)
    # Only the suspects moved from the fresh model.
    changed = sum(int((a != b).sum()) for a, b in zip(fresh.parameters(), scratch.parameters(), strict=True))
    assert 0 < changed <= 5
