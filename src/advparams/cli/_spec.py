"""The command line's verbs declared as data: each command module's parsers (names, help
texts, arguments) live in a YAML file beside it (``locks.yaml`` for
:mod:`advparams.cli.locks`), read by :func:`add_verbs`; the module keeps the code.

A file is a list of verbs; a verb with ``verbs`` is a group (``advparams watermark
embed``). A verb's keys: ``name``, ``help``, ``description``, ``epilog``, ``raw`` (keep
the epilog's line breaks), ``add_help``, ``intermixed`` (positionals after options),
``func`` (the module's function that runs it), ``common`` (``false``, or which of
``device``/``data`` the shared options include; default both) and ``args``. An
argument's keys are ``flags`` and :meth:`argparse.ArgumentParser.add_argument`'s own,
with these values resolved in the module:

* ``type``: ``int``, ``float`` or ``str``; ``action``: argparse's name, or a class of the
  module; ``==SUPPRESS==`` for :data:`argparse.SUPPRESS`;
* ``choices``: a list, ``registry:NAME`` (the names a registry of
  :func:`advparams.house.registries` holds when the parser is built, so a plugin's
  members are offered) or ``name:CONSTANT`` (a collection of the module);
* ``epilog``: text, ``options:NAME`` (a registry's members and their options),
  ``call:FUNCTION`` (the module's function returns it), or a list of those, joined;
* in ``help``, ``description`` and text epilogs, ``{CONSTANT}`` or ``{CONSTANT:spec}``
  is the module's constant, formatted (so a limit quoted in a help text is the limit).
"""

from __future__ import annotations

import argparse
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from advparams.cli._common import add_common, options_help

SUPPRESS = "==SUPPRESS=="
_PLACEHOLDER = re.compile(r"\{([A-Z][A-Z0-9_]*)(?::([^{}]*))?\}")
_TYPES = {"int": int, "float": float, "str": str}


@functools.cache
def load_spec(module_file: str) -> list[dict[str, Any]]:
    """The verbs declared beside ``module_file`` (``x.py`` -> ``x.yaml``), read once."""
    path = Path(module_file).with_suffix(".yaml")
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(spec, list):
        raise TypeError(f"{path.name} must hold a list of verbs")
    return spec


def _text(value: str, ns: Mapping[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: format(ns[m.group(1)], m.group(2) or ""), value)


def _registry(name: str) -> Any:
    from advparams.house import registries

    return registries()[name][0]


def _choices(value: Any, ns: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("registry:"):
        return _registry(value.removeprefix("registry:")).names()
    if isinstance(value, str) and value.startswith("name:"):
        return tuple(ns[value.removeprefix("name:")])
    return value


def _epilog(value: Any, ns: Mapping[str, Any]) -> str:
    if isinstance(value, list):
        return "".join(_epilog(part, ns) for part in value)
    if value.startswith("options:"):
        return options_help(_registry(value.removeprefix("options:")))
    if value.startswith("call:"):
        return str(ns[value.removeprefix("call:")]())
    return _text(value, ns)


def _argument(p: argparse.ArgumentParser, spec: Mapping[str, Any], ns: Mapping[str, Any]) -> None:
    kw = {k: v for k, v in spec.items() if k != "flags"}
    flags = spec["flags"] if isinstance(spec["flags"], list) else [spec["flags"]]
    for key in ("help", "default"):
        if kw.get(key) == SUPPRESS:
            kw[key] = argparse.SUPPRESS
    if isinstance(kw.get("help"), str) and kw["help"] is not argparse.SUPPRESS:
        kw["help"] = _text(kw["help"], ns)
    if "type" in kw:
        kw["type"] = _TYPES[kw["type"]]
    if kw.get("action") in ns:
        kw["action"] = ns[kw["action"]]
    if "choices" in kw:
        kw["choices"] = _choices(kw["choices"], ns)
    p.add_argument(*flags, **kw)


def _verb(sub: Any, spec: Mapping[str, Any], ns: Mapping[str, Any]) -> None:
    kw: dict[str, Any] = {}
    for key in ("help", "description"):
        if key in spec:
            kw[key] = _text(spec[key], ns)
    if "epilog" in spec:
        kw["epilog"] = _epilog(spec["epilog"], ns)
    if spec.get("raw"):
        kw["formatter_class"] = argparse.RawDescriptionHelpFormatter
    if "add_help" in spec:
        kw["add_help"] = spec["add_help"]
    p = sub.add_parser(spec["name"], **kw)
    if spec.get("intermixed"):
        p.intermixed = True
    if "verbs" in spec:
        inner = p.add_subparsers(**spec["subcommands"], metavar="SUBCOMMAND")
        for verb in spec["verbs"]:
            _verb(inner, verb, ns)
        return
    for arg in spec.get("args", []):
        _argument(p, arg, ns)
    common = spec.get("common", {})
    if common is not False:
        add_common(p, **common)
    p.set_defaults(func=ns[spec["func"]], **spec.get("defaults", {}))


def add_verbs(sub: Any, ns: Mapping[str, Any]) -> None:
    """Adds the verbs declared beside the module whose namespace ``ns`` is (its
    ``globals()``) to the command line's subparsers ``sub``."""
    for spec in load_spec(ns["__file__"]):
        _verb(sub, spec, ns)


__all__ = ["SUPPRESS", "add_verbs", "load_spec"]
