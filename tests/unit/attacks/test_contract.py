"""Contract tests run for every registered attack."""

import copy
import dataclasses
import json

import pytest
import torch

from advparams.attacks import ATTACKS
from advparams.errors import AdvParamsError
from advparams.registry import config_to_dict
from advparams.testing import state_equal


def tiny(name: str) -> dict:
    """The attack's own small options (``Attack.tiny``): no table here to keep in step."""
    return dict(ATTACKS.get(name).tiny)


@pytest.fixture(params=ATTACKS.names())
def attack_name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_config_round_trip(attack_name) -> None:
    attack = ATTACKS.build(attack_name, {})
    assert ATTACKS.build(attack_name, config_to_dict(attack.config)).config == attack.config
    assert dataclasses.is_dataclass(attack.config)


def test_input_not_mutated_and_deterministic(attack_name, locked) -> None:
    model, key, data = locked
    before = copy.deepcopy(model.state_dict())
    a = ATTACKS.build(attack_name, tiny(attack_name)).run(model, data, key=key)
    b = ATTACKS.build(attack_name, tiny(attack_name)).run(model, data, key=key)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert a.model is not model and state_equal(a.model, b.model)
    assert a.attack == attack_name and a.seconds >= 0
    assert isinstance(a.info, dict)
    json.dumps(a.info)  # JSON-ready, as the harness writes it


def test_only_key_attacks_use_the_key(attack_name, locked) -> None:
    model, key, data = locked
    attack = ATTACKS.build(attack_name, tiny(attack_name))
    if type(attack).uses_key:
        with pytest.raises(AdvParamsError, match="key"):
            attack.run(model, data)
    else:
        with_key = attack.run(model, data, key=key)
        without = attack.run(model, data)
        assert state_equal(with_key.model, without.model)


def test_data_free_attacks_ignore_data(attack_name, locked) -> None:
    model, key, data = locked
    attack = ATTACKS.build(attack_name, tiny(attack_name))
    if not type(attack).uses_data:
        assert state_equal(attack.run(model, None, key=key).model, attack.run(model, data, key=key).model)


def test_the_package_docstring_names_every_registered_attack() -> None:
    import advparams.attacks as pkg

    missing = [n for n in ATTACKS.names() if f"``{n}``" not in (pkg.__doc__ or "")]
    assert missing == []


def test_declared_capabilities_match_what_the_attack_does(attack_name, locked) -> None:
    """The engine reads these class attributes instead of guessing from option names."""
    model, key, data = locked
    cls = ATTACKS.get(attack_name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    assert cls.scratch_baseline == ("scratch" in fields)
    options = {**tiny(attack_name), **({"scratch": True} if cls.scratch_baseline else {})}
    res = ATTACKS.build(attack_name, options).run(model, data, key=key)
    assert ("scratch" in res.baselines) == cls.scratch_baseline
    assert ("suspects" in res.info) == cls.reports_suspects
    assert callable(getattr(res.model, "flagged", None)) == cls.filters_queries


def test_tiny_options_build_and_take_effect(attack_name) -> None:
    options = tiny(attack_name)
    attack = ATTACKS.build(attack_name, options)  # a typo in a class's tiny options fails here
    default = ATTACKS.build(attack_name, {}).config
    assert attack.name == attack_name and type(attack.config) is type(default)
    # each tiny option reaches the configuration as given, and changes a default (one that
    # matched the default would make nothing smaller)
    assert {k: getattr(attack.config, k) for k in options} == options
    assert all(getattr(default, k) != v for k, v in options.items()), options
    assert config_to_dict(attack.config) == {**config_to_dict(default), **options}
