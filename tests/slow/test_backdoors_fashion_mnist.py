"""Backdoors on the real Fashion-MNIST and its colour task (about a minute; run by `make test`).

The full measurements are the evaluations of docs/backdoors.md; these check, on a subset
and few epochs, that the attacks do what they claim on real images.
"""

import pytest
import torch

from advparams.backdoors import BACKDOORS, implant_from_seed, normalise
from advparams.data import load_dataset
from advparams.metrics import accuracy, predict
from advparams.metrics.backdoor import attack_success_rate
from advparams.training import TrainConfig, train_from_seed
from tests.slow.realdata import require_fashion_mnist

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _real_data_present() -> None:
    require_fashion_mnist()


def _subset(name: str, n_train: int, n_test: int):  # type: ignore[no-untyped-def]
    train, test = load_dataset(name, "train"), load_dataset(name, "test")
    g = torch.Generator().manual_seed(0)
    return train.subset(torch.randperm(len(train), generator=g)[:n_train]), test.subset(torch.arange(n_test))


def _asr(model, trigger, test, index=0):  # type: ignore[no-untyped-def]
    x = trigger.apply(test.images, index)
    preds = predict(model, (normalise(x, test), test.labels))
    return attack_success_rate(preds, test.labels, trigger.targets[index])


def test_badnets_on_fashion_mnist_costs_little_accuracy() -> None:
    train, test = _subset("fashion-mnist", 20000, 2000)
    cfg = TrainConfig(epochs=2)
    options = {"num_classes": 10, "in_channels": 1, "input_size": 28}
    twin = train_from_seed("lenet", options, train, cfg, seed=0).model
    res = implant_from_seed(BACKDOORS.build("badnets", {}), "lenet", options, train, cfg, seed=0)
    assert _asr(res.model, res.trigger, test) > 0.95
    assert _asr(twin, res.trigger, test) < 0.1  # the trigger alone does not make the target
    assert accuracy(twin, test) - accuracy(res.model, test) < 0.03


def test_dct_triggers_on_the_colour_task_each_reach_their_target() -> None:
    # A narrow net on 8,000 images (about a minute): magnitude 40, where the evaluation
    # (a wider net) uses 30; measured 85-93 % per trigger with these settings, so each
    # trigger must reach 80 % (5 points below the lowest measured).
    train, test = _subset("fashion-mnist-colour", 8000, 1000)
    options = {"num_classes": 10, "in_channels": 3, "input_size": 32, "width": 8}
    bd = BACKDOORS.build("dct", {"mode": "n-to-n", "triggers": 3, "magnitude": 40})
    res = implant_from_seed(bd, "vgg", options, train, TrainConfig(epochs=4), seed=0)
    asr = [_asr(res.model, res.trigger, test, i) for i in range(3)]
    assert res.trigger.targets == (0, 1, 2) and min(asr) >= 0.8, asr
