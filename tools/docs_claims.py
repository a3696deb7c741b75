"""Claims: the numbers quoted in the prose of README.md and docs/*.md, each with its rows.

A number in prose outside a generated block is listed in ``docs/claims.yaml`` with the rows
it comes from; this check renders each claim's text from those rows and fails unless the
page holds the rendered text (line breaks and repeated spaces count as one space):

    - doc: README.md
      rows: docs/benchmarks/lock_speed_v2.jsonl      # a JSON-lines file, or a run folder
      where: {model: lenet, search: batched}         # rows whose fields equal these
      text: "to {min accuracy_locked pct.1}-{max accuracy_locked pct.1}% test accuracy"

A placeholder is ``{REDUCER FIELD FORMAT}``: REDUCER one of min, max, mean, std (sample),
sum, count, one (every selected row holds the same value); FIELD a dotted path into a row
(``metrics.params_changed``; ``metrics.tpr.0.05`` reads the key ``0.05``; a run folder's
rows are its ``results.jsonl`` lines) or the difference of two in each row (``accuracy_clean-accuracy_locked``); FORMAT
``pct.N`` (times 100, N decimals), ``.N`` (N decimals), ``d`` (whole number), ``,d`` (with
thousands separators). A claim may name ``where`` per placeholder instead:
``{min accuracy pct.2 | kind=lock scheme=hardened}``; its values are strings matched against
the field's JSON text (``seed=2``, ``search=batched``).

Pages named under ``complete:`` in the claims file hold no measured-looking number
(a decimal or a whole number followed by %, s, points, pp or min) in prose outside
generated blocks, code and tables unless a claim renders it or ``quoted:`` lists it with
its source (a paper, a target, a default).

    python tools/docs_claims.py            # check (make docs-check runs it)
    python tools/docs_claims.py --list     # every uncovered number of every page
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = Path("docs/claims.yaml")
PLACEHOLDER = re.compile(r"\{(?P<body>[^{}]+)\}")
MEASURED = re.compile(r"(?<![\w.])(?:\d[\d,]*\.\d+|\d+)(?: ?(?:%|s\b|points\b|pp\b|min\b))|(?<![\w.])\d+\.\d+(?![\w.])")


class ClaimError(Exception):
    """A claim that cannot be read or rendered, or a page that does not hold it (one line)."""


def _field(row: Any, path: str) -> Any:
    """The value at a dotted path; a key that itself holds dots (``metrics.tpr.0.05``,
    the key ``0.05``) is matched whole, the longest key first."""
    if not path:
        return row
    if not isinstance(row, dict):
        return None
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in row:
            value = _field(row[key], ".".join(parts[n:]))
            if value is not None:
                return value
    return None


def _value(row: dict[str, Any], path: str) -> Any:
    """A field, or ``a-b``: the difference of two numeric fields of the same row."""
    value = _field(row, path)
    if value is None and "-" in path:
        a, b = (_field(row, p) for p in path.split("-", 1))
        if isinstance(a, int | float) and isinstance(b, int | float):
            return a - b
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


_PARSED: dict[tuple[str, int, int], Any] = {}


def _parsed(path: Path, parse: Callable[[str], Any]) -> Any:
    """``parse`` of the file's text, read again only when its size or time changed (a
    check reads the same rows for every claim and every page)."""
    st = path.stat()
    token = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if token not in _PARSED:
        if len(_PARSED) > 256:
            _PARSED.clear()
        _PARSED[token] = parse(path.read_text(encoding="utf-8"))
    return _PARSED[token]


def load_rows(source: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file, or of a run folder's ``results.jsonl``."""
    path = source / "results.jsonl" if source.is_dir() else source
    try:
        rows = _parsed(path, lambda text: [json.loads(line) for line in text.splitlines() if line.strip()])
    except (OSError, json.JSONDecodeError) as exc:
        raise ClaimError(f"cannot read rows {source}: {exc}") from None
    return [dict(r) for r in rows]


def select(rows: Iterable[dict[str, Any]], where: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows whose fields equal ``where``'s (compared as JSON text)."""
    want = {k: _text(v) for k, v in where.items()}
    return [r for r in rows if all(_text(_field(r, k)) == v for k, v in want.items())]


REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "min": min,
    "max": max,
    "mean": statistics.fmean,
    "std": statistics.stdev,
    "sum": math.fsum,
}


def _format(value: float, spec: str) -> str:
    if spec.startswith("pct."):
        return f"{100.0 * value:.{int(spec[4:])}f}"
    if spec.startswith("."):
        return f"{value:.{int(spec[1:])}f}"
    if spec == "d":
        return f"{round(value):d}"
    if spec == ",d":
        return f"{round(value):,d}"
    raise ClaimError(f"unknown format {spec!r} (pct.N, .N, d or ,d)")


def render(text: str, rows: list[dict[str, Any]], where: dict[str, Any]) -> str:
    """The claim's text with every placeholder filled from its rows."""

    def fill(m: re.Match[str]) -> str:
        body, _, local = m["body"].partition("|")
        parts = body.split()
        if len(parts) != 3:
            raise ClaimError(f"placeholder {{{m['body']}}}: want '{{REDUCER FIELD FORMAT}}'")
        reducer, path, spec = parts
        cond = dict(where)
        for item in local.split():
            key, eq, value = item.partition("=")
            if not eq:
                raise ClaimError(f"placeholder {{{m['body']}}}: conditions are FIELD=VALUE")
            cond[key] = value
        chosen = select(rows, cond)
        values = [_value(r, path) for r in chosen]
        values = [v for v in values if v is not None]
        if reducer == "count":
            return _format(float(len(chosen)), spec)
        if not values:
            raise ClaimError(f"placeholder {{{m['body']}}}: no row has {path} where {cond}")
        if reducer == "one":
            if len({json.dumps(v) for v in values}) != 1:
                raise ClaimError(f"placeholder {{{m['body']}}}: the rows disagree on {path}")
            return _format(float(values[0]), spec)
        if reducer not in REDUCERS:
            raise ClaimError(f"placeholder {{{m['body']}}}: unknown reducer {reducer!r}")
        if reducer == "std" and len(values) < 2:
            raise ClaimError(f"placeholder {{{m['body']}}}: std needs two rows")
        return _format(REDUCERS[reducer]([float(v) for v in values]), spec)

    return PLACEHOLDER.sub(fill, text)


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@dataclass(frozen=True)
class Claim:
    doc: str
    text: str
    rows: str
    where: dict[str, Any]


def read_claims(root: Path) -> tuple[list[Claim], list[str], list[dict[str, str]]]:
    """The claims, the complete pages, and the quoted (not measured) numbers."""
    path = root / CLAIMS
    if not path.is_file():
        return [], [], []
    data = _parsed(path, yaml.safe_load) or {}
    if not isinstance(data, dict):
        raise ClaimError(f"{CLAIMS}: want a mapping with claims:, complete: and quoted:")
    claims = []
    for i, c in enumerate(data.get("claims") or []):
        if not isinstance(c, dict) or not {"doc", "text", "rows"} <= set(c):
            raise ClaimError(f"{CLAIMS}: claim {i + 1}: needs doc, text and rows")
        claims.append(Claim(str(c["doc"]), str(c["text"]), str(c["rows"]), dict(c.get("where") or {})))
    return claims, [str(p) for p in data.get("complete") or []], list(data.get("quoted") or [])


def prose(lines: list[str]) -> list[tuple[int, str]]:
    """The page's prose lines (1-based numbers): not in generated blocks, code or tables."""
    out, block, code = [], False, False
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if s.startswith("<!-- generated:"):
            block = True
        elif s == "<!-- end generated -->":
            block = False
        elif s.startswith("```"):
            code = not code
        elif not (block or code or s.startswith("|")):
            out.append((n, line))
    return out


def uncovered(root: Path, page: str, rendered: list[str], quoted: list[str]) -> list[str]:
    """Measured-looking numbers of ``page``'s prose that no claim renders and none is quoted."""
    lines = (root / page).read_text(encoding="utf-8").splitlines()
    spans: list[tuple[int, int]] = []
    text = ""
    starts = []
    for n, line in prose(lines):
        starts.append((len(text), n))
        text += line + " "
    flat_text = text  # positions map back to lines through `starts`
    for cover in [*rendered, *quoted]:
        pattern = r"\s+".join(re.escape(w) for w in cover.split())
        for m in re.finditer(pattern, flat_text):
            spans.append((m.start(), m.end()))
    out = []
    for m in MEASURED.finditer(flat_text):
        if any(a <= m.start() and m.end() <= b for a, b in spans):
            continue
        number = max(n for pos, n in starts if pos <= m.start())
        out.append(f"{page}:{number}: {m.group(0).strip()!r} is neither a claim nor quoted")
    return out


def check(root: Path, list_all: bool = False) -> list[str]:
    """Every problem, one line each (empty: every claim holds)."""
    claims, complete, quoted = read_claims(root)
    problems: list[str] = []
    rendered: dict[str, list[str]] = {}
    cache: dict[str, list[dict[str, Any]]] = {}
    pages_text: dict[str, str] = {}
    for i, c in enumerate(claims, 1):
        try:
            if c.rows not in cache:  # each rows file read once per check
                cache[c.rows] = load_rows(root / c.rows)
            text = render(c.text, cache[c.rows], c.where)
        except ClaimError as exc:
            problems.append(f"{CLAIMS}: claim {i} ({c.doc}): {exc}")
            continue
        page = root / c.doc
        if not page.is_file():
            problems.append(f"{CLAIMS}: claim {i}: no page {c.doc}")
            continue
        if c.doc not in pages_text:
            pages_text[c.doc] = flat(page.read_text(encoding="utf-8"))
        if flat(text) not in pages_text[c.doc]:
            problems.append(f"{c.doc}: claim {i} renders {text!r} from {c.rows}; the page does not say it")
        rendered.setdefault(c.doc, []).append(text)
    quotes: dict[str, list[str]] = {}
    for q in quoted:
        quotes.setdefault(str(q.get("doc")), []).append(str(q.get("text")))
    pages = complete
    if list_all:
        pages = ["README.md", *sorted(str(p.relative_to(root)) for p in (root / "docs").glob("*.md"))]
    for name in pages:
        problems += uncovered(root, name, rendered.get(name, []), quotes.get(name, []))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this checkout)")
    parser.add_argument("--list", action="store_true", help="list the uncovered numbers of every page")
    args = parser.parse_args(argv)
    try:
        problems = check(args.root.resolve(), args.list)
    except (ClaimError, OSError, yaml.YAMLError) as exc:
        print(f"docs_claims: error: {exc}", file=sys.stderr)
        return 2
    for p in problems:
        print(p, file=sys.stderr if not args.list else sys.stdout)
    if problems and not args.list:
        return 1
    if not args.list:
        print("every claim matches its rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
