"""The limits table of ``docs/formats.md`` against the constants the readers enforce.

Not a fuzz test (it runs in the fast tier): it lives beside the hostile-input tests these
limits are for. Each row names its constant by import path; the row's limit must be what
the constant holds, every size cap of :data:`advparams.files.LIMITS` must have a row, and so
must every ``MAX_*``/``MIN_*`` constant of the modules whose formats the table lists.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from advparams.files import LIMITS

DOC = Path(__file__).parents[2] / "docs" / "formats.md"
ROW = re.compile(r"^\| (?P<format>[^|]+) \| (?P<what>[^|]+) \| (?P<limit>[^|]+) \| `(?P<constant>[^`]+)` \|$")
UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
MODULES = [
    "advparams.files.reading",
    "advparams.files.tensors",
    "advparams.backdoors.triggerfile",
    "advparams.fingerprints.base",
    "advparams.fingerprints.fingerprintfile",
    "advparams.fingerprints.infip",
    "advparams.imaging",
    "advparams.tracing.roster",
    "advparams.tracing.queryfile",
    "advparams.tracing.blackbox",
    "advparams.keys.seal",
    "advparams.keys.io",
    "advparams.checkpoint",
    "advparams.watermarks.users",
    "advparams.watermarks.keyfile",
    "advparams.data._pickle_data",
    "advparams.data.gtsrb",
    "advparams.data.folder",
    "advparams.huggingface.data",
    "advparams.huggingface.common",
]
"""The modules whose every ``MAX_*``/``MIN_*`` constant must be in the table."""


def rows() -> list[dict[str, str]]:
    section = DOC.read_text().split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    found = [m.groupdict() for line in section.splitlines() if (m := ROW.match(line.strip()))]
    assert len(found) > 20, "the limits table of docs/formats.md was not found"
    return found


def value_of(path: str) -> Any:
    """``advparams.x.y.NAME`` or ``advparams.x.y.NAME["key"]`` (the listed modules imported
    first: a family registers its file-size limits when its reader is imported)."""
    for name in MODULES:
        importlib.import_module(name)
    m = re.fullmatch(r"(?P<module>[\w.]+)\.(?P<name>\w+)(\[\"(?P<key>[^\"]+)\"\])?", path)
    assert m is not None, path
    value = getattr(importlib.import_module(m["module"]), m["name"])
    return value[m["key"]] if m["key"] else value


def parse_limit(text: str) -> int | float:
    """``1,000``, ``64 MiB``, ``1e-12``, ``0.5`` as a number (integers exactly)."""
    number, _, unit = text.strip().partition(" ")
    assert unit in ("", *UNITS), f"unknown unit in {text!r}"
    digits = number.replace(",", "")
    value = int(digits) if digits.isdigit() else float(digits)
    return value * UNITS.get(unit, 1)


@pytest.mark.parametrize("row", rows(), ids=lambda r: r["constant"])
def test_every_documented_limit_is_the_constant(row: dict[str, str]) -> None:
    value = value_of(row["constant"])
    assert parse_limit(row["limit"]) == value, f"docs/formats.md says {row['limit']!r}; the code holds {value!r}"


def test_every_limit_is_documented() -> None:
    documented = {r["constant"] for r in rows()}
    missing = [f'advparams.files.LIMITS["{k}"]' for k in LIMITS if f'advparams.files.LIMITS["{k}"]' not in documented]
    for name in MODULES:
        module = importlib.import_module(name)
        public = "advparams.files" if name in ("advparams.files.reading", "advparams.files.tensors") else name
        source = inspect.getsource(module)
        for attr in dir(module):
            defined_here = re.search(rf"^[A-Z_, ]*\b{attr}\b[A-Z_, ]* =", source, re.MULTILINE)
            constant = re.fullmatch(r"(MAX|MIN)_[A-Z_]+", attr) and isinstance(getattr(module, attr), (int, float))
            if constant and defined_here and f"{public}.{attr}" not in documented:
                missing.append(f"{public}.{attr}")
    assert not missing, f"limits missing from the table in docs/formats.md: {missing}"
