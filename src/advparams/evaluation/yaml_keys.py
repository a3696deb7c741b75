"""Duplicate keys in a YAML config refused with their lines (YAML itself keeps the last
silently, so ``seeds: [0]`` written twice would quietly run the second).

The check is a second pass over text that :func:`advparams.files.parse_yaml` has already
parsed and bounded, with a loader derived from ``yaml.SafeLoader``: plain data only, never
a Python object.

Example:
    >>> refuse_duplicate_keys("name: a\\nseeds: [0]\\nname: b\\n", what="config file c.yaml")
    Traceback (most recent call last):
    ...
    advparams.errors.ConfigError: config file c.yaml: key 'name' appears twice in one mapping (lines 1 and 3); keep one
"""

from __future__ import annotations

from typing import Any

import yaml

from advparams.errors import ConfigError

_MERGE = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (keys a ``<<``
    merge brings in may still be overridden, as YAML intends)."""

    what = "the YAML text"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class refuses it
                continue
            if first is not None:
                where = f"line {line}" if first == line else f"lines {first} and {line}"
                raise ConfigError(
                    f"{self.what}: key {str(key)[:60]!r} appears twice in one mapping ({where}); keep one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def refuse_duplicate_keys(text: str, *, what: str) -> None:
    """Raises :class:`ConfigError` naming the first key written twice in one mapping of
    ``text`` and its lines; ``what`` names the text (e.g. ``config file run.yaml``)."""
    loader = UniqueKeyLoader(text)
    loader.what = what
    try:
        loader.get_single_data()
    finally:
        loader.dispose()


__all__ = ["UniqueKeyLoader", "refuse_duplicate_keys"]
