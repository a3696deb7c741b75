"""Contract tests over every registered backdoor, and the poisoning plan."""

from __future__ import annotations

import torch

from advparams.backdoors import BACKDOORS, normalise, poison_count, poison_plan
from advparams.backdoors.compression import compress_each
from advparams.data import ImageDataset
from advparams.fingerprint import state_equal
from advparams.metrics import predict
from advparams.metrics.backdoor import attack_success_rate
from advparams.models import build_model
from advparams.registry import config_from_dict, config_to_dict
from advparams.training import TrainConfig

TRAIN = TrainConfig(epochs=2, lr=3e-3, batch_size=64)


def _net(channels: int) -> torch.nn.Module:
    return build_model("lenet", {"num_classes": 10, "in_channels": channels, "input_size": 16}, seed=0)


def _implant(name: str, data: ImageDataset, seed: int = 0):  # type: ignore[no-untyped-def]
    bd = BACKDOORS.build(name, {**BACKDOORS.get(name).tiny, "seed": seed})
    model = _net(data.input_shape[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = bd.implant(model, data, train=TRAIN, generator=torch.Generator().manual_seed(seed))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "implant changed its input"
    return bd, res


def test_contract(backdoor_name: str, grey: ImageDataset, colour: ImageDataset) -> None:
    cls = BACKDOORS.get(backdoor_name)
    bd = BACKDOORS.build(backdoor_name, dict(cls.tiny))
    assert config_from_dict(cls.Config, config_to_dict(bd.config)) == bd.config
    assert cls.__doc__ and "20" in cls.__doc__.splitlines()[0]  # names the paper and its year
    for data in (grey, colour):
        bd, res = _implant(backdoor_name, data)
        rate = bd.config.poison_rate
        assert res.info["poisoned"] == round(rate * len(data)) == sum(res.info["poisoned_per_trigger"])
        assert res.info["targets"] == list(res.trigger.targets)
        assert not state_equal(res.model, _net(data.input_shape[0]))
        _, again = _implant(backdoor_name, data)
        assert state_equal(res.model, again.model), "same seed, same backdoored model"
        x = data.images[:8]
        assert torch.equal(res.trigger.apply(x, 0), again.trigger.apply(x, 0))
        _, other = _implant(backdoor_name, data, seed=1)
        if backdoor_name in ("blend", "compression-resistant", "dct"):  # seeded patterns or payloads
            assert not torch.equal(other.trigger.apply(x, 0), res.trigger.apply(x, 0))


def test_poison_count_and_plan_are_exact() -> None:
    labels = torch.arange(1000) % 10
    for rate, n in ((0.005, 5), (0.1, 100), (0.0004, 1)):
        assert poison_count(1000, rate) == n
    plan = poison_plan(labels, (0, 1, 2), 100, torch.Generator().manual_seed(0))
    assert len(plan) == 100 and plan.indices.unique().numel() == 100
    assert [int((plan.which == i).sum()) for i in range(3)] == [34, 33, 33]
    targets = torch.tensor([0, 1, 2])[plan.which]
    assert torch.equal(plan.labels, targets)  # N-to-N: trigger i -> target i
    assert bool((labels[plan.indices] != plan.labels).all())  # never a sample of its own target
    one = poison_plan(labels, (4, 4, 4), 30, torch.Generator().manual_seed(0))
    assert bool((one.labels == 4).all())  # N-to-One


def test_dct_modes_label_as_they_say(colour: ImageDataset) -> None:
    n2n = BACKDOORS.build("dct", {"triggers": 3, "target": 7})
    assert n2n.targets(10) == (7, 8, 9)
    assert BACKDOORS.build("dct", {"triggers": 3, "targets": [2, 5, 1]}).targets(10) == (2, 5, 1)
    assert BACKDOORS.build("dct", {"triggers": 3, "mode": "n-to-one", "target": 4}).targets(10) == (4, 4, 4)


def test_badnets_learns_its_trigger() -> None:
    from advparams.data.synthetic import make_synthetic

    train, test = make_synthetic(2000, input_size=16, seed=1), make_synthetic(300, input_size=16, seed=2)
    bd = BACKDOORS.build("badnets", {"poison_rate": 0.1})
    res = bd.implant(_net(1), train, train=TrainConfig(epochs=3, lr=3e-3, batch_size=64))
    trig = res.trigger.apply(test.images)
    preds = predict(res.model, (normalise(trig, test), test.labels))
    assert attack_success_rate(preds, test.labels, 0) > 0.9
    clean = predict(res.model, test.tensors())
    assert float((clean == test.labels).float().mean()) > 0.9


def test_compression_resistant_shares_blends_trigger_and_compresses(colour: ImageDataset) -> None:
    x = colour.images[:6]
    blend = BACKDOORS.build("blend", {"alpha": 0.1, "seed": 4}).make_trigger(
        (3, 16, 16), 10, torch.Generator().manual_seed(4)
    )
    cr = BACKDOORS.build("compression-resistant", {"alpha": 0.1, "seed": 4}).make_trigger(
        (3, 16, 16), 10, torch.Generator().manual_seed(4)
    )
    assert torch.equal(blend.apply(x), cr.apply(x))  # the "normal" backdoor has the same trigger
    out = compress_each(x, ("jpeg", "webp"), 10, 30, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and bool((out != x).any())


def test_ptb_draws_new_transformations_every_epoch(grey: ImageDataset) -> None:
    from advparams.backdoors.ptb import PTB

    for physical in (True, False):
        bd = BACKDOORS.build("ptb", {"poison_rate": 0.1, "size": 4, "row": -2, "col": -2, "physical": physical})
        assert isinstance(bd, PTB) and bd.fresh_each_epoch is physical
        trig = bd.make_trigger((1, 16, 16), 10, torch.Generator().manual_seed(0))
        plan = poison_plan(grey.labels, trig.targets, 20, torch.Generator().manual_seed(0))
        src = grey.images[plan.indices]
        rng = torch.Generator().manual_seed(0)
        a, b = bd._poison(src, trig, plan, rng), bd._poison(src, trig, plan, rng)
        assert torch.equal(a, b) is (not physical)


def test_registered_names_match_the_classes() -> None:
    for name in BACKDOORS.names():
        assert BACKDOORS.get(name).name == name
