"""What makes each baseline scheme what it is (the shared contract is in test_contract)."""

import pytest
import torch

from advparams.metrics import accuracy
from advparams.schemes import SFGE, NNSplitter, RandomPerturbation
from advparams.schemes.lock_samples import LockBatches
from advparams.schemes.locking import candidate_parameters
from advparams.schemes.nnsplitter import filter_importance, window_mask


def _changed(original, locked):
    out = {}
    for (name, a), (_, b) in zip(original.named_parameters(), locked.named_parameters(), strict=True):
        idx = torch.nonzero((a != b).reshape(-1)).reshape(-1)
        if idx.numel():
            out[name] = idx
    return out


def _as_sets(changed):
    return {name: set(idx.tolist()) for name, idx in changed.items()}


def test_random_changes_exactly_the_budget_within_range(trained) -> None:
    model, data = trained
    res = RandomPerturbation(RandomPerturbation.Config(max_params=25, seed=4)).lock(model, data)
    changed = _changed(model, res.model)
    assert sum(i.numel() for i in changed.values()) == 25
    orig, locked = dict(model.named_parameters()), dict(res.model.named_parameters())
    for name, idx in changed.items():
        lo, hi = float(orig[name].detach().min()), float(orig[name].detach().max())
        vals = locked[name].detach().reshape(-1)[idx]
        assert bool(((vals >= lo) & (vals <= hi)).all())
    # Positions follow the seed, not the gradient: another seed picks other weights.
    other = RandomPerturbation(RandomPerturbation.Config(max_params=25, seed=5)).lock(model, data)
    assert _as_sets(_changed(model, other.model)) != _as_sets(changed)


def test_random_positions_are_spread_by_tensor_size(trained) -> None:
    model, data = trained
    cands = candidate_parameters(model)
    total = sum(p.numel() for p in cands.values())
    res = RandomPerturbation(RandomPerturbation.Config(max_params=400, seed=0)).lock(model, data)
    per = res.report.changed_per_tensor
    for name, p in cands.items():
        expected = 400 * p.numel() / total
        assert abs(per.get(name, 0) - expected) <= 4 * expected**0.5 + 2


def test_sfge_moves_top_gradient_weights_against_the_loss(trained) -> None:
    model, data = trained
    cfg = SFGE.Config(per_layer=3, epsilon=0.1, margin=0.0, num_samples=600)
    res = SFGE(cfg).lock(model, data)
    # An independent gradient on the same (all) samples.
    batches = LockBatches(data, 600, 600, torch.Generator().manual_seed(0), torch.device("cpu"))
    work = __import__("copy").deepcopy(model).eval()
    grads = batches.gradients(work, candidate_parameters(work))
    changed = _changed(model, res.model)
    orig, locked = dict(model.named_parameters()), dict(res.model.named_parameters())
    for name, g in grads.items():
        top = set(g.reshape(-1).abs().topk(3).indices.tolist())
        assert set(changed.get(name, torch.empty(0)).tolist()) == top
        for i in top:
            delta = float(locked[name].detach().reshape(-1)[i] - orig[name].detach().reshape(-1)[i])
            assert delta * float(g.reshape(-1)[i]) > 0  # moved up the loss
            r = float(orig[name].detach().max() - orig[name].detach().min())
            assert abs(delta) <= 0.1 * r + 1e-6
    assert res.report.lock_accuracy_after < res.report.lock_accuracy_before


def test_filter_importance_and_window_by_hand() -> None:
    w = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    assert filter_importance(w, torch.ones_like(w)).tolist() == [3.0, 12.0]
    # mean 2.5, std 1.87: the window centred on the mean, 0.5 std wide keeps 2 and 3.
    assert window_mask(w, 0.0, 0.5).tolist() == [[False, False, True], [True, False, False]]


def test_nnsplitter_changes_only_window_weights_in_few_filters(trained) -> None:
    model, data = trained
    cfg = NNSplitter.Config(num_filters=4, window_width=0.5, max_params=40)
    res = NNSplitter(cfg).lock(model, data)
    assert 0 < res.key.num_changed <= 40
    orig = dict(model.named_parameters())
    rows = set()
    for name, idx in _changed(model, res.model).items():
        p = orig[name]
        assert bool(window_mask(p.detach(), 0.0, 0.5).reshape(-1)[idx].all())
        per_row = p[0].numel()
        rows |= {(name, int(i) // per_row) for i in idx}
        lo, hi = float(p.detach().min()), float(p.detach().max())
        vals = dict(res.model.named_parameters())[name].detach().reshape(-1)[idx]
        assert bool(((vals >= lo) & (vals <= hi)).all())
    assert len(rows) <= 4


def test_nnsplitter_reaches_the_target_with_enough_filters(trained) -> None:
    model, data = trained
    res = NNSplitter(NNSplitter.Config(num_filters=16)).lock(model, data)
    assert res.report.stopped == "target"
    assert accuracy(res.model, data) <= res.report.target_accuracy + 1e-6


@pytest.mark.parametrize(
    ("cls", "bad"),
    [
        (RandomPerturbation, {"max_params": 0}),
        (SFGE, {"epsilon": 0.0}),
        (SFGE, {"per_layer": 0}),
        (NNSplitter, {"window_width": 0.0}),
        (NNSplitter, {"include": "conv*"}),
    ],
)
def test_config_validation(cls, bad) -> None:
    with pytest.raises(ValueError):
        cls.Config(**bad)
