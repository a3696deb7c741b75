import pytest
import torch

from advparams.attacks import FineTune, FineTuneConfig, attacker_indices, reinitialised
from advparams.metrics import accuracy
from advparams.testing import TinyConvNet, state_equal


def test_attacker_indices_fraction_balanced_deterministic() -> None:
    labels = torch.arange(1000) % 10
    idx = attacker_indices(labels, 0.05, torch.Generator().manual_seed(3))
    assert idx.numel() == 50 and len(set(idx.tolist())) == 50
    assert torch.bincount(labels[idx], minlength=10).tolist() == [5] * 10
    assert torch.equal(idx, attacker_indices(labels, 0.05, torch.Generator().manual_seed(3)))


def test_scratch_sees_exactly_the_finetuning_samples_and_batches(trained, monkeypatch) -> None:
    model, data = trained
    calls = []
    import advparams.attacks.finetune as ft

    real_train = ft.train

    def spy(net, subset, cfg, *, generator=None, **kw):
        calls.append((subset.images.clone(), subset.labels.clone(), generator.get_state().clone(), cfg))
        return real_train(net, subset, cfg, generator=generator, **kw)

    monkeypatch.setattr(ft, "train", spy)
    res = FineTune(FineTuneConfig(data_fraction=0.1, epochs=1)).run(model, data)
    assert len(calls) == 2
    (xa, ya, ga, ca), (xb, yb, gb, cb) = calls
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ga, gb) and ca == cb
    assert res.info["num_samples"] == round(0.1 * len(data)) == len(ya)
    assert torch.equal(data.labels[torch.tensor(res.info["samples"])], ya)
    assert "scratch" in res.baselines and not state_equal(res.baselines["scratch"], res.model)


def test_reinitialised_is_fresh_and_leaves_rng(trained) -> None:
    model, _ = trained
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    fresh = reinitialised(model, 0)
    assert torch.equal(torch.rand(1), expected)
    assert not torch.equal(fresh.conv.weight, model.conv.weight)
    assert torch.equal(fresh.bn.running_mean, torch.zeros(8))
    assert state_equal(fresh, reinitialised(model, 0))


def test_finetuning_a_locked_model_recovers_accuracy(trained) -> None:
    from advparams import AdvParams

    model, data = trained
    locked = AdvParams().lock(model, data).model
    res = FineTune(FineTuneConfig(data_fraction=0.3, epochs=3, lr=3e-3, batch_size=16)).run(locked, data)
    assert accuracy(res.model, data) > accuracy(locked, data) + 0.3


@pytest.mark.parametrize("bad", [{"data_fraction": 0}, {"data_fraction": 1.5}, {"epochs": 0}, {"optimizer": "x"}])
def test_config_validation(bad) -> None:
    with pytest.raises(ValueError):
        FineTuneConfig(**bad)


def test_tensor_pair_data(trained) -> None:
    model, data = trained
    x, y = data.tensors()
    res = FineTune(FineTuneConfig(data_fraction=0.1, epochs=1, scratch=False)).run(model, (x, y))
    assert res.baselines == {} and res.info["num_samples"] == 60
    assert isinstance(res.model, TinyConvNet)


def test_frozen_flags_do_not_stop_fine_tuning(trained) -> None:
    # A model whose parameters do not require grad is still fine-tuned in all layers.
    import copy

    from advparams.attacks import FineTune, FineTuneConfig
    from advparams.testing import state_equal

    model, data = trained
    frozen = copy.deepcopy(model)
    for p in frozen.parameters():
        p.requires_grad_(False)
    res = FineTune(FineTuneConfig(epochs=1, data_fraction=0.2)).run(frozen, data)
    assert not state_equal(res.model, frozen)
    assert all(not p.requires_grad for p in frozen.parameters())  # input untouched
