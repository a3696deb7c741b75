"""YAML nested far past the depth limit is refused from a scan of the text, before the
recursive parser spends seconds on it (a fuzzed config took 2.8 s alone)."""

from __future__ import annotations

import pytest

from advparams.errors import AdvParamsError
from advparams.files.reading import MAX_JSON_DEPTH, flow_depth, parse_yaml


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("a: " + "[" * 40 + "]" * 40, 40),
        ("a: {b: [1, {c: [2]}]}\n" + "x: [" * 1 + "]" * 1 + "\n" + "y: " + "[]" * 40, 4),
        ('a: "' + "[" * 40 + '"\nb: ' + "[" * 33 + "]" * 33, 33),  # quoted brackets do not count
        ("a: '" + "[" * 40 + "'\n", 0),
        ("a: 1 # " + "{" * 40 + "\n", 0),  # nor commented ones
        ('a: "\\"' + "[" * 40 + '"\n', 0),  # an escaped quote does not end the string
    ],
)
def test_flow_depth_counts_open_collections(text: str, depth: int) -> None:
    assert flow_depth(text) == depth


def test_deep_yaml_is_refused_before_parsing() -> None:
    deep = ("name: " + "[" * 5000).encode()
    with pytest.raises(AdvParamsError, match=f"nested too deeply \\(more than {MAX_JSON_DEPTH} levels\\)"):
        parse_yaml(deep, what="config file c.yaml")
    # within the limit it parses, and an exact check still follows the scan
    assert parse_yaml(b"a: " + b"[" * 5 + b"1" + b"]" * 5, what="x") == {"a": [[[[[1]]]]]}
