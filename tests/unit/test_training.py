import copy

import pytest
import torch

from advparams.metrics import accuracy
from advparams.testing import TinyConvNet, tiny_data
from advparams.training import TrainConfig, train


def test_train_learns_and_leaves_input_alone() -> None:
    torch.manual_seed(0)
    net = TinyConvNet()
    before = copy.deepcopy(net.state_dict())
    data = tiny_data(600)
    res = train(
        net,
        data,
        TrainConfig(epochs=3, batch_size=32, lr=3e-3),
        generator=torch.Generator().manual_seed(0),
        eval_data=data,
    )
    assert accuracy(res.model, data) > 0.9 > accuracy(net, data)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert len(res.history) == 3 and res.history[-1].eval_accuracy == pytest.approx(accuracy(res.model, data))


def test_train_deterministic_given_generator() -> None:
    data = tiny_data(200)
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = TinyConvNet()
        outs.append(
            train(net, data, TrainConfig(epochs=1, batch_size=50), generator=torch.Generator().manual_seed(4)).model
        )
    assert all(
        torch.equal(a, b) for a, b in zip(outs[0].state_dict().values(), outs[1].state_dict().values(), strict=True)
    )


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError):
        TrainConfig(optimizer="rmsprop")  # type: ignore[arg-type]
