from dataclasses import dataclass

import pytest

from advparams.errors import ConfigError, UnknownNameError
from advparams.registry import Registry, config_from_dict, config_to_dict


@dataclass(frozen=True)
class Cfg:
    rate: float = 0.5
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise ValueError("rate must be in [0, 1]")


class Thing:
    Config = Cfg

    def __init__(self, config: Cfg) -> None:
        self.config = config


def test_register_get_names_and_duplicate() -> None:
    reg: Registry = Registry("widget")
    reg.register("b")(1)
    reg.register("a")(2)
    assert reg.names() == ["a", "b"] and reg.get("a") == 2 and "b" in reg and len(reg) == 2
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(3)


def test_unknown_name_lists_known() -> None:
    reg: Registry = Registry("widget")
    reg.register("alpha")(1)
    with pytest.raises(UnknownNameError, match="unknown widget 'beta'; known: alpha"):
        reg.get("beta")


def test_build_config_class_validates_keys_and_values() -> None:
    reg: Registry = Registry("thing")
    reg.register("t")(Thing)
    built = reg.build("t", {"rate": 0.25, "names": ["x", "y"]})
    assert built.config == Cfg(rate=0.25, names=("x", "y"))
    with pytest.raises(ConfigError, match="unknown option.*colour"):
        reg.build("t", {"colour": 1})
    with pytest.raises(ConfigError, match="rate must be in"):
        reg.build("t", {"rate": 2})


def test_build_function_checks_kwargs() -> None:
    reg: Registry = Registry("model")
    reg.register("f")(lambda width=1: width * 2)
    assert reg.build("f", {"width": 3}) == 6
    with pytest.raises(ConfigError, match="unknown option.*depth"):
        reg.build("f", {"depth": 3})


def test_config_round_trip() -> None:
    cfg = Cfg(rate=0.1, names=("a",))
    assert config_from_dict(Cfg, config_to_dict(cfg)) == cfg
