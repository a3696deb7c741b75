"""The command line's verbs declared as data (advparams.cli._spec): every declared name
resolves, a registry's choices are read when the parser is built, constants are quoted."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

import advparams.cli as cli_package
from advparams.cli._common import Parser
from advparams.cli._spec import add_verbs, load_spec


def _parser(ns: dict) -> argparse.ArgumentParser:
    top = Parser(prog="advparams")
    add_verbs(top.add_subparsers(dest="command", required=True, parser_class=Parser), ns)
    return top


def test_every_declared_name_and_constant_resolves_in_its_module() -> None:
    import importlib

    files = sorted(Path(cli_package.__file__).parent.glob("*.yaml"))
    assert len(files) >= 9
    for path in files:
        module = importlib.import_module(f"advparams.cli.{path.stem}")
        text = path.read_text()
        names = set(re.findall(r"\{([A-Z][A-Z0-9_]*)(?::[^{}]*)?\}", text))
        names |= set(re.findall(r"(?:name|call):(\w+)", text)) | set(re.findall(r"func: (\w+)", text))
        assert names <= set(vars(module)), (path.name, names - set(vars(module)))
        assert isinstance(yaml.safe_load(text), list)


def test_a_spec_builds_verbs_groups_constants_and_live_registry_choices(tmp_path, monkeypatch) -> None:
    from advparams.schemes import SCHEMES

    spec = tmp_path / "toy.yaml"
    spec.write_text(
        yaml.safe_dump(
            [
                {"name": "one", "help": "at most {LIMIT} things", "func": "run", "common": False,
                 "args": [{"flags": "--n", "type": "int", "default": 3, "help": "n, up to {LIMIT:,}"},
                          {"flags": "--scheme", "choices": "registry:schemes", "help": "scheme"},
                          {"flags": "--hidden", "action": "store_true", "help": "==SUPPRESS=="}]},
                {"name": "group", "help": "a group", "subcommands": {"dest": "sub", "required": True},
                 "verbs": [{"name": "inner", "func": "run", "common": False, "args": []}]},
            ]
        )
    )  # fmt: skip
    ns = {"__file__": str(tmp_path / "toy.py"), "LIMIT": 12345, "run": lambda args: 0}
    load_spec.cache_clear()
    parser = _parser(ns)
    args = parser.parse_args(["one", "--n", "7", "--scheme", SCHEMES.names()[0]])
    assert args.n == 7 and args.func is ns["run"] and args.hidden is False
    assert parser.parse_args(["group", "inner"]).sub == "inner"
    one = parser._subparsers._group_actions[0].choices["one"]  # type: ignore[union-attr]
    text = one.format_help()
    assert "n, up to 12,345" in text and "--hidden" not in text
    assert "at most 12345 things" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["one", "--scheme", "no-such-scheme"])
    SCHEMES.register("spec-test-scheme")(SCHEMES.get(SCHEMES.names()[0]))  # a plugin's member, added later
    try:
        assert _parser(ns).parse_args(["one", "--scheme", "spec-test-scheme"]).scheme == "spec-test-scheme"
    finally:
        SCHEMES._items.pop("spec-test-scheme")
    load_spec.cache_clear()


def test_an_unknown_constant_in_a_help_text_fails_when_the_parser_is_built(tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump([{"name": "x", "help": "{NO_SUCH}", "func": "run"}]))
    load_spec.cache_clear()
    with pytest.raises(KeyError, match="NO_SUCH"):
        _parser({"__file__": str(tmp_path / "bad.py"), "run": lambda args: 0})
    load_spec.cache_clear()
