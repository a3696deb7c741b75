"""The readers the evaluation config's sections share: each names the value it refuses."""

import pytest

from advparams.errors import ConfigError
from advparams.evaluation import config_from_mapping
from advparams.evaluation.reading import integer, known_keys, mapping


def test_readers_accept_and_refuse() -> None:
    assert mapping(None, "x") == {} and mapping({"a": 1}, "x") == {"a": 1}
    with pytest.raises(ConfigError, match=r"^tracing\.mark must be a mapping, got list$"):
        mapping([1], "tracing.mark")
    known_keys({"a": 1}, {"a", "b"}, "s")
    with pytest.raises(ConfigError, match=r"^s has unknown key\(s\) c, d; accepted: a, b$"):
        known_keys({"c": 1, "d": 2, "a": 0}, {"a", "b"}, "s")
    assert integer(3, "n", 1, 3) == 3
    for bad in (True, 3.0, "3", 0, 4):
        with pytest.raises(ConfigError, match=r"^tracing\.users must be an integer in \[1, 3\], got "):
            integer(bad, "tracing.users", 1, 3)


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ("tracing", {"users": "100"}, r"tracing\.users must be an integer"),
        ("tracing", {"mark": [1]}, r"tracing\.mark must be a mapping"),
        ("tracing", {"model": "x"}, r"tracing has unknown key\(s\) model"),
        ("fingerprints", {"schemes": [{"name": "ipguard"}], "negatives": -1}, r"fingerprints\.negatives must be"),
    ],
)
def test_each_section_names_the_value_it_refuses(section, value, message) -> None:
    raw = {"name": "t", "dataset": "synthetic", "model": "lenet", "seeds": [0], section: value}
    with pytest.raises(ConfigError, match=message):
        config_from_mapping(raw)
