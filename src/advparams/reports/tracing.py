"""The traceable-keys sections of an evaluation report and their plot, rebuilt from
``trace-lock``, ``trace-copy`` and ``trace-attack`` rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from advparams.evaluation.config import EvalConfig
from advparams.evaluation.rows import ResultRow
from advparams.reports._table import table

CLEAN = "copy (no attack)"


def case_label(row: ResultRow) -> str:
    """How tables name a case: the attack and its setting, without the user.

    Example:
        >>> from advparams.evaluation.rows import ResultRow
        >>> case_label(ResultRow("r", "trace-attack", 0, "lenet", "prune", {"rate": 0.3, "user": "user000"}))
        'prune rate=0.3'
    """
    if row.kind == "trace-copy":
        return CLEAN
    if row.attack == "collude":
        return f"{row.setting.get('colluders')} colluders (average)"
    setting = {k: v for k, v in row.setting.items() if k not in ("user", "coalition")}
    return " ".join([str(row.attack)] + [f"{k}={v}" for k, v in sorted(setting.items())])


def _count(flags: Sequence[bool]) -> str:
    return f"{sum(bool(f) for f in flags)}/{len(flags)}" if flags else "–"


def _range(values: Sequence[float], digits: int = 2) -> str:
    if not values:
        return "–"
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f}" if lo == hi else f"{lo:.{digits}f} to {hi:.{digits}f}"


def _innocents(black: Sequence[Mapping[str, Any]]) -> str:
    return str(sum(int(b["innocents"]) for b in black)) if black else "–"


def _needed(rs: Sequence[ResultRow], key: str = "queries_needed") -> str:
    got = sorted(int(r.metrics[key]) for r in rs if r.metrics.get(key) is not None)
    if not got:
        return "–"
    median = got[len(got) // 2]
    return f"{median} ({got[0]}-{got[-1]})"


def _cases(rows: Sequence[ResultRow]) -> dict[tuple[str, str], list[ResultRow]]:
    out: dict[tuple[str, str], list[ResultRow]] = defaultdict(list)
    for r in rows:
        out[(str(r.scheme), case_label(r))].append(r)
    return out


def tracing_sections(by_kind: Mapping[str, list[ResultRow]], config: EvalConfig) -> list[str]:
    """The Markdown lines of the tracing sections (none without a ``tracing`` section)."""
    section = config.tracing
    if section is None:
        return []
    locks = by_kind.get("trace-lock", [])
    copies = by_kind.get("trace-copy", [])
    attacked = by_kind.get("trace-attack", [])
    models = [config.model] + [m.title for m in section.models]
    rate = locks[0].metrics.get("rate") if locks else None
    out = ["## Traceable keys", ""]
    out.append(
        f"Each seed's model is locked once with the hardened scheme (dither 23) and {section.users} users get a key "
        "each; a user's key unlocks the original plus that user's Tardos-coded marks (no training). *White-box*: "
        "tracing from the suspect's weights; *black-box*: from its answers to the owner's secret queries only. A case "
        "is *named right* when someone is accused and every accused user is guilty (the copy's holder, or one of the "
        f"colluders); *innocents* counts wrongly accused users (the threshold allows a {rate if rate else '–'} chance "
        "of accusing any innocent user per case); *queries needed*: the fewest queries, of the counts tried, that name "
        "the right user, median (range)."
    )
    out.append("")
    out += ["### The users' copies", ""]
    body = []
    for m in models:
        ls = [r for r in locks if r.scheme == m]
        cs = [r for r in copies if r.scheme == m]
        if not cs:
            continue
        deltas = [100 * (float(r.accuracy or 0) - float(r.metrics["accuracy_original"])) for r in cs]
        agree = [100 * float(r.metrics["agreement"]) for r in cs]
        body.append(
            [
                m,
                str(len({r.seed for r in cs})),
                str(len(cs)),
                _range([100 * float(r.accuracy or 0) for r in ls]),
                _range([100 * float(r.metrics["locked_accuracy"]) for r in ls]),
                _range(deltas),
                f"{sum(abs(d) <= 0.2 for d in deltas)}/{len(deltas)}",
                _range(agree),
                f"{sum(a >= 99.0 for a in agree)}/{len(agree)}",
                _count([bool(r.metrics["copy_reproduced"]) for r in ls]),
            ]
        )
    header = ["model", "seeds", "copies", "original acc %", "locked acc %", "copy − original (points)",
              "within 0.2", "label agreement %", "≥ 99 %", "copy = key's unlock"]  # fmt: skip
    out.append(table(header, body) if body else "_No rows yet._")
    out += ["", "### Tracing", ""]
    body = []
    grouped = _cases([*copies, *attacked])
    text = any("black_text" in r.metrics for r in [*copies, *attacked])
    order = [CLEAN] + list(dict.fromkeys(case_label(r) for r in attacked))
    for m in models:
        for case in order:
            rs = grouped.get((m, case), [])
            if not rs:
                continue
            body.append(
                [
                    m,
                    case,
                    str(len(rs)),
                    _range([100 * float(r.accuracy or 0) for r in rs], 1),
                    _count([r.metrics["white"]["named_right"] for r in rs]),
                    str(sum(int(r.metrics["white"]["innocents"]) for r in rs)),
                    _count([r.metrics["black"]["named_right"] for r in rs if "black" in r.metrics]),
                    _innocents([r.metrics["black"] for r in rs if "black" in r.metrics]),
                    _needed(rs),
                ]
                + (
                    [
                        _count([r.metrics["black_text"]["named_right"] for r in rs if "black_text" in r.metrics]),
                        _innocents([r.metrics["black_text"] for r in rs if "black_text" in r.metrics]),
                        _needed(rs, "text_needed"),
                    ]
                    if text
                    else []
                )
            )
    header = ["model", "case", "cases", "acc %", "white-box named right", "innocents",
              "black-box named right", "innocents", "queries needed"]  # fmt: skip
    if text:  # a language model: black-box from log-probabilities, and from its text alone
        header += ["text only named right", "innocents", "prompts needed"]
    out.append(table(header, body) if body else "_No rows yet._")
    every = [*copies, *attacked]
    if every:
        by_queries = [v for r in every for v in r.metrics.get("black_by_queries", {}).values()]
        black = [r.metrics["black"] for r in every if "black" in r.metrics]
        texts = [r.metrics["black_text"] for r in every if "black_text" in r.metrics]
        text_by = [v for r in every for v in r.metrics.get("black_text_by_queries", {}).values()]
        out += [
            "",
            f"Innocent users accused over all {len(every)} cases: white-box "
            f"{sum(int(r.metrics['white']['innocents']) for r in every)}"
            + (
                f", black-box with every query {_innocents(black)}, black-box at any of the query counts tried "
                f"{sum(int(v['innocents']) for v in by_queries)} (of {len(by_queries)} traces)"
                + (
                    f"; from text alone with every prompt {_innocents(texts)}, at any of the counts tried "
                    f"{sum(int(v['innocents']) for v in text_by)} (of {len(text_by)} traces)."
                    if texts
                    else "."
                )
                if black
                else " (black-box tracing off: `tracing.black_box: false`)."
            ),
        ]
    out.append("")
    return out


def tracing_plots(rows: Sequence[ResultRow], config: EvalConfig, folder: Path, plt: Any) -> list[str]:
    """``trace-queries.png``: the share of cases black-box tracing names right against the
    number of queries, one line per case (all models and seeds together); not drawn for
    fewer than two query limits."""
    from advparams.reports.plotting import SHIFT_NOTE, WIDTH, Series, draw_series, enough_points, save, set_ticks

    if config.tracing is None or not config.tracing.black_box:
        return []
    cases = _cases([r for r in rows if r.kind in ("trace-copy", "trace-attack")])
    limits = sorted(config.tracing.limits)
    if not cases or not enough_points(limits):
        return []
    by_case: dict[str, list[ResultRow]] = defaultdict(list)
    for (_, case), rs in cases.items():
        by_case[case] += rs
    series = []
    for i, (case, rs) in enumerate(by_case.items()):
        ys = [100 * sum(bool(r.metrics["black_by_queries"].get(str(n), {}).get("named_right")) for r in rs) / len(rs)
              for n in limits]  # fmt: skip
        if max(ys) == 0 and case != CLEAN:
            continue  # never named: listed in the table
        series.append(Series(case, {float(n): [y] for n, y in zip(limits, ys, strict=True)}, i))
    fig, ax = plt.subplots(figsize=(WIDTH, 4.4), layout="constrained")
    moved = draw_series(ax, series, log=True, tol=1.0)
    set_ticks(ax, limits, log=True)
    ax.set_xlabel("queries asked (black-box)")
    ax.set_ylabel("cases named right (%)")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.set_title("Black-box tracing: the right user named, against the queries asked")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", title=SHIFT_NOTE if moved else None, title_fontsize=7)
    made: list[str] = []
    save(fig, plt, folder, "trace-queries.png", made)
    return made


__all__ = ["case_label", "tracing_plots", "tracing_sections"]
