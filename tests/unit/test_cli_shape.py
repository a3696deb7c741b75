"""The command line stays a thin layer: no function of ``advparams.cli`` runs over 40
lines (what a command does to files is :mod:`advparams.usecases`; its arguments are
declared beside it as data)."""

from __future__ import annotations

import ast
from pathlib import Path

import advparams.cli

LONGEST = 40


def _lengths(source: str) -> dict[str, int]:
    tree = ast.parse(source)
    return {
        n.name: n.end_lineno - n.lineno + 1  # type: ignore[operator]
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def test_no_command_line_function_is_over_40_lines() -> None:
    folder = Path(advparams.cli.__file__).parent
    files = sorted(folder.glob("*.py"))
    assert len(files) >= 10
    long = {f"{p.name}:{name}": n for p in files for name, n in _lengths(p.read_text()).items() if n > LONGEST}
    assert long == {}


def test_the_measure_counts_a_long_function() -> None:
    body = "\n".join(f"    x = {i}" for i in range(45))
    assert _lengths(f"def f():\n{body}\n") == {"f": 46}
