"""Contract tests run for every registered attack."""

import copy
import dataclasses

import pytest
import torch

from advparams.attacks import ATTACKS
from advparams.registry import config_to_dict
from advparams.testing import state_equal

FAST = {"finetune": {"epochs": 1, "data_fraction": 0.2}}


@pytest.fixture(params=ATTACKS.names())
def attack_name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_config_round_trip(attack_name) -> None:
    attack = ATTACKS.build(attack_name, {})
    assert ATTACKS.build(attack_name, config_to_dict(attack.config)).config == attack.config
    assert dataclasses.is_dataclass(attack.config)


def test_input_not_mutated_and_deterministic(attack_name, trained) -> None:
    model, data = trained
    before = copy.deepcopy(model.state_dict())
    a = ATTACKS.build(attack_name, FAST.get(attack_name, {})).run(model, data)
    b = ATTACKS.build(attack_name, FAST.get(attack_name, {})).run(model, data)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert a.model is not model and state_equal(a.model, b.model)
    assert a.attack == attack_name and a.seconds >= 0
