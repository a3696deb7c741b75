"""PNG plots of an evaluation, from its rows alone (needs the ``report`` extra: matplotlib).

Every figure keeps one standard, so that it reads at its saved size: 6-10 inches wide at
:data:`DPI`, axes labelled with their units, legends outside the data, every series
visible (distinct markers; lines that coincide are drawn a little apart along x, and the
legend says so) and no figure for fewer than two x values: a single point is a number,
and the report's table already holds it.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from advparams.errors import AdvParamsError
from advparams.evaluation.config import EvalConfig
from advparams.evaluation.rows import ResultRow
from advparams.reports._table import mean_std

DPI = 110
"""Dots per inch of every saved plot."""

WIDTH = 8.0
"""Width of a one-panel figure, inches; small multiples stay within 10."""

STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 10,
}
"""Font sizes that stay legible at :data:`DPI` (matplotlib's rc names)."""

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
"""One marker per series, so that series that meet still tell apart."""

ACCURACY = "test accuracy (%)"
SHIFT_NOTE = "lines that coincide are drawn\nslightly apart along x"


def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise AdvParamsError("plots need matplotlib: pip install 'advparams[report]'") from None
    return plt


# -- pure helpers -------------------------------------------------------------------------


def enough_points(xs: Iterable[float]) -> bool:
    """Whether ``xs`` holds at least two distinct values: what a line plot needs."""
    return len({float(x) for x in xs}) >= 2


def grid_shape(n: int, max_cols: int = 4) -> tuple[int, int]:
    """Rows and columns of a grid of ``n`` panels, at most ``max_cols`` wide, rows filled evenly.

    Example:
        >>> grid_shape(10), grid_shape(5), grid_shape(2)
        ((3, 4), (2, 3), (1, 2))
    """
    if n < 1:
        raise ValueError(f"a grid needs at least one panel, got {n}")
    rows = -(-n // max_cols)
    return rows, -(-n // rows)


def tick_label(value: float) -> str:
    """A plain number: ``5`` not ``5.0`` nor ``5x10^0``, ``10000`` not ``1e+04``; else at
    most 4 significant digits.

    Example:
        >>> tick_label(5.0), tick_label(10000.0), tick_label(0.05), tick_label(5.000000000000001)
        ('5', '10000', '0.05', '5')
    """
    if abs(value) < 1e9 and round(value, 9).is_integer():
        return str(int(round(value)))
    return f"{value:.4g}"


def tick_values(values: Iterable[float], *, log: bool, preferred: Iterable[float] = ()) -> list[float]:
    """Ticks at the x values actually plotted, ``preferred`` ones first, dropping any that
    would crowd a kept one (closer than a ratio of 1.3 on a log axis, 4 % of the span on a
    linear one).

    Example:
        >>> tick_values([1, 2, 5, 10, 20, 25, 48.3, 50], log=True, preferred=[1, 2, 5, 10, 20, 50])
        [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
    """
    vals = sorted({float(v) for v in values})
    if not vals:
        return []
    span = vals[-1] - vals[0]
    pref = [float(v) for v in preferred if vals[0] <= float(v) <= vals[-1]]

    def apart(a: float, b: float) -> bool:
        if log:
            return max(a, b) / min(a, b) >= 1.3
        return abs(a - b) >= 0.04 * span

    kept: list[float] = []
    for v in pref + vals:
        if all(apart(v, k) for k in kept):
            kept.append(v)
    return sorted(kept)


def coinciding(curves: Sequence[Mapping[float, float]], tol: float) -> list[list[int]]:
    """Groups (two or more) of the curves that would hide one another: at least two shared
    x values, and within ``tol`` of each other at every shared one (transitively).

    Example:
        >>> coinciding([{1: 10, 2: 11}, {1: 10.5, 2: 11}, {1: 50, 2: 60}], tol=1)
        [[0, 1]]
    """
    parent = list(range(len(curves)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, a in enumerate(curves):
        for j in range(i + 1, len(curves)):
            b = curves[j]
            shared = set(a) & set(b)
            if len(shared) >= 2 and all(abs(a[x] - b[x]) <= tol for x in shared):
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(curves)):
        groups[root(i)].append(i)
    return [g for g in groups.values() if len(g) > 1]


def dodge(curves: Sequence[Mapping[float, float]], tol: float, step: float = 0.08) -> list[float]:
    """Per curve, its sideways shift in steps of the x grid (0: drawn where it is): the
    members of a :func:`coinciding` group spread evenly around their place, ``step`` apart.

    Example:
        >>> dodge([{1: 10, 2: 11}, {1: 10.5, 2: 11}, {1: 50, 2: 60}], tol=1)
        [-0.04, 0.04, 0.0]
    """
    out = [0.0] * len(curves)
    for group in coinciding(curves, tol):
        for k, i in enumerate(group):
            out[i] = round((k - (len(group) - 1) / 2) * step, 6)
    return out


def simplify(xs: Sequence[float], ys: Sequence[float]) -> list[tuple[float, float]]:
    """The polyline's corners only: repeated points and points on a straight run dropped,
    so that two curves that draw the same line compare equal.

    Example:
        >>> simplify([0, 0, 0, 0.5, 1], [0, 0.3, 1, 1, 1])
        [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)]
    """
    out: list[tuple[float, float]] = []
    for p in zip((round(float(x), 9) for x in xs), (round(float(y), 9) for y in ys), strict=True):
        if out and p == out[-1]:
            continue
        if len(out) >= 2:
            (ax, ay), (bx, by) = out[-2], out[-1]
            if abs((bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax)) < 1e-12:  # collinear
                out[-1] = p
                continue
        out.append(p)
    return out


def same_curves(curves: Sequence[tuple[Sequence[float], Sequence[float]]]) -> list[list[int]]:
    """The ``(xs, ys)`` curves grouped where they draw the same line (see :func:`simplify`),
    in first-seen order: one drawn line, and one legend entry, per group.

    Example:
        >>> same_curves([([0, 0, 1], [0, 1, 1]), ([0, 1], [0, 1]), ([0, 0, 0, 1], [0, 0.5, 1, 1])])
        [[0, 2], [1]]
    """
    groups: dict[tuple[tuple[float, float], ...], list[int]] = {}
    for i, (xs, ys) in enumerate(curves):
        groups.setdefault(tuple(simplify(xs, ys)), []).append(i)
    return list(groups.values())


def shifted(xs: Sequence[float], shift: float, grid: Sequence[float], *, log: bool) -> list[float]:
    """``xs`` moved by ``shift`` times the smallest gap (ratio, on a log axis) of ``grid``."""
    pts = sorted(set(grid))
    if not shift or len(pts) < 2:
        return list(xs)
    if log:
        ratio = min(b / a for a, b in zip(pts, pts[1:], strict=False))
        return [x * ratio**shift for x in xs]
    gap = min(b - a for a, b in zip(pts, pts[1:], strict=False))
    return [x + shift * gap for x in xs]


def attribute_doc(cls: type, name: str) -> str | None:
    """What a dataclass's Google-style ``Attributes:`` section says of ``name``, in one line."""
    doc = inspect.getdoc(cls) or ""
    m = re.search(rf"^([ \t]*){re.escape(name)}: (.+?)(?=^\1\w[\w ]*:|\Z)", doc, flags=re.M | re.S)
    return " ".join(m.group(2).split()) if m else None


def axis_label(key: str, values: Sequence[float], doc: str | None) -> tuple[str, float]:
    """The axis label of a swept option, and the factor its values are drawn times: a share
    in [0, 1] (its doc says "share of" or "fraction of") is drawn in percent.

    Example:
        >>> axis_label("rate", [0.1, 0.5], "fraction of candidate weights zeroed, in [0, 1).")
        ('rate (%): fraction of candidate weights zeroed', 100.0)
    """
    what = re.split(r", in [\[(]|;", doc or "")[0].replace("[inferred]", "").replace("``", "")
    what = what.strip().rstrip(".").strip()
    share = what.startswith(("share of", "fraction of")) and all(0 <= v <= 1 for v in values)
    scale = 100.0 if share else 1.0
    label = key + (" (%)" if share else "")
    return (f"{label}: {what}" if what else label), scale


def _curve(points: Mapping[float, list[float]]) -> tuple[list[float], list[float], list[float]]:
    xs = sorted(points)
    ms, ss = zip(*(mean_std(points[x]) for x in xs), strict=True) if xs else ((), ())
    return xs, list(ms), list(ss)


# -- drawing ------------------------------------------------------------------------------


class _Series:
    """One line: its label, points ``x -> values`` and look (colour and marker by owner)."""

    def __init__(self, label: str, points: Mapping[float, list[float]], style: int, dashed: bool = False):
        self.label, self.points, self.style, self.dashed = label, points, style, dashed


def draw_series(ax: Any, series: Sequence[_Series], *, log: bool, tol: float) -> bool:
    """Error-bar lines with a marker each, coinciding ones dodged; whether any was."""
    curves = [{x: mean_std(v)[0] for x, v in s.points.items()} for s in series]
    shifts = dodge(curves, tol)
    grid = [x for s in series for x in s.points]
    for s, shift in zip(series, shifts, strict=True):
        xs, ms, ss = _curve(s.points)
        ax.errorbar(
            shifted(xs, shift, grid, log=log), ms, yerr=ss if any(ss) else None, color=f"C{s.style % 10}",
            marker=MARKERS[s.style % len(MARKERS)], ms=4, capsize=2, lw=1.3, ls="--" if s.dashed else "-",
            label=s.label,
        )  # fmt: skip
    return any(shifts)


def set_ticks(ax: Any, values: Iterable[float], *, log: bool, preferred: Iterable[float] = ()) -> None:
    """Plain-number ticks at the plotted x values (no ``10^1``, no minor labels)."""
    from matplotlib.ticker import NullFormatter, NullLocator

    ticks = tick_values(values, log=log, preferred=preferred)
    if log:
        ax.set_xscale("log")
    ax.set_xticks(ticks, [tick_label(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def outside_legend(fig: Any, ax: Any, note: str | None = None, loc: str = "outside right upper") -> None:
    """One legend for the figure, outside the panels (``ax``'s handles; ``note`` as its title)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc=loc, title=note, title_fontsize=7)


def save(fig: Any, plt: Any, folder: Path, name: str, made: list[str]) -> None:
    """Writes ``fig`` as ``folder/name`` at :data:`DPI` and records the name."""
    fig.savefig(folder / name, dpi=DPI)
    plt.close(fig)
    made.append(name)


# -- the figures --------------------------------------------------------------------------


def _references(ax: Any, clean: Sequence[float], chance: float | None) -> None:
    if clean:
        ax.axhline(100 * sum(clean) / len(clean), color="grey", ls=":", lw=1, label="clean (mean)")
    if chance is not None:
        ax.axhline(100 * chance, color="grey", ls="--", lw=1, label="chance")


def budget_figure(plt: Any, rows: Sequence[ResultRow], config: EvalConfig, refs: tuple[Any, Any]) -> Any:
    """Locked accuracy against the values changed, one line per scheme (each budget at its
    seeds' mean count); None where fewer than two counts were measured."""
    schemes = [s.title for s in config.schemes]
    series = []
    for i, s in enumerate(schemes):
        by: dict[Any, list[ResultRow]] = defaultdict(list)
        for r in rows:
            if r.kind == "budget" and r.scheme == s and r.accuracy is not None:
                by[r.setting.get("budget", r.metrics["params_changed"])].append(r)
        pts = {sum(float(r.metrics["params_changed"]) for r in rs) / len(rs): [100 * r.accuracy for r in rs]  # type: ignore[operator]
               for rs in by.values()}  # fmt: skip
        if pts:
            series.append(_Series(s, pts, i))
    xs = [x for s in series for x in s.points]
    if not enough_points(xs):
        return None
    fig, ax = plt.subplots(figsize=(WIDTH, 4.5), layout="constrained")
    moved = draw_series(ax, series, log=True, tol=2.0)
    _references(ax, *refs)
    set_ticks(ax, [round(x) for x in xs], log=True, preferred=config.budgets)
    ax.set_xlabel("values changed (key entries, mean over seeds)")
    ax.set_ylabel(ACCURACY)
    ax.set_title("Locked accuracy against the number of changed values")
    ax.grid(alpha=0.3)
    outside_legend(fig, ax, SHIFT_NOTE if moved else None)
    return fig


def sweep_keys(settings: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]] | None:
    """The swept option (the first that takes two numeric values or more) and the options
    that split the lines (those not fixed by the swept one's value); None if none sweeps.

    Example:
        >>> sweep_keys([{"rate": 0.1, "scope": "layer"}, {"rate": 0.2, "scope": "layer"},
        ...             {"rate": 0.1, "scope": "global"}])
        ('rate', ['scope'])
    """
    keys = list(dict.fromkeys(k for s in settings for k in s))
    for k in keys:
        vals = [s[k] for s in settings if k in s]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals) and enough_points(vals):
            split = []
            for other in keys:
                seen: dict[Any, set[str]] = defaultdict(set)
                for s in settings:
                    seen[s.get(k)].add(json.dumps(s.get(other)))
                if other != k and any(len(v) > 1 for v in seen.values()):
                    split.append(other)
            return k, split
    return None


def tied_options(settings: Sequence[Mapping[str, Any]], x_key: str, split: Sequence[str]) -> list[str]:
    """The options that change along with the swept one (neither swept nor splitting), with
    their values in order: what a figure's title must name.

    Example:
        >>> tied_options([{"data_fraction": 0.01, "epochs": 40}, {"data_fraction": 0.1, "epochs": 20}],
        ...              "data_fraction", [])
        ['epochs 40, 20']
    """
    out = []
    for k in dict.fromkeys(k for s in settings for k in s):
        values = list(dict.fromkeys(str(s.get(k)) for s in settings))
        if k != x_key and k not in split and len(values) > 1:
            out.append(f"{k} " + ", ".join(values))
    return out


def attack_figure(plt: Any, rows: Sequence[ResultRow], config: EvalConfig, aspec: Any, refs: tuple[Any, Any]) -> Any:
    """Accuracy after one attack against its swept option: one panel per value of the
    options that split the lines, one line per scheme (scratch dashed); None where no
    option sweeps or fewer than two of its values were measured."""
    from advparams.attacks import ATTACKS

    keys = sweep_keys(list(aspec.settings()))
    if keys is None:
        return None
    x_key, split = keys
    schemes = [s.title for s in config.schemes]
    panels: dict[str, dict[str, dict[float, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        if r.kind not in ("attack", "baseline") or r.attack != aspec.name or r.accuracy is None:
            continue
        if x_key not in r.setting:
            continue
        panel = ", ".join(f"{k}={r.setting[k]}" for k in split if k in r.setting)
        panels[panel][r.scheme or "?"][float(r.setting[x_key])].append(100 * r.accuracy)
    xs = [x for p in panels.values() for pts in p.values() for x in pts]
    if not enough_points(xs):
        return None
    cls = ATTACKS.get(aspec.name) if aspec.name in ATTACKS else None
    doc = attribute_doc(cls.Config, x_key) if cls is not None and hasattr(cls, "Config") else None
    xlabel, scale = axis_label(x_key, xs, doc)
    log = min(xs) > 0 and max(xs) / min(xs) >= 20
    order = {s: i for i, s in enumerate([*schemes, "scratch"])}
    names = sorted(panels)
    nrows, ncols = grid_shape(len(names), max_cols=2)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(WIDTH + 1.5 * (ncols - 1), 3.6 * nrows + 0.6), squeeze=False, sharey=True,
        layout="constrained",
    )  # fmt: skip
    moved = False
    for ax, name in zip(axes.flat, names, strict=False):
        lines = sorted(panels[name].items(), key=lambda kv: order.get(kv[0], len(order)))
        series = [
            _Series(who, {scale * x: v for x, v in pts.items()}, order.get(who, len(order)), dashed=who == "scratch")
            for who, pts in lines
        ]
        moved |= draw_series(ax, series, log=log, tol=2.0)
        _references(ax, *refs)
        set_ticks(ax, [scale * x for x in xs], log=log)
        ax.set_title(name or None)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(ACCURACY)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.supxlabel(xlabel, fontsize=9)
    along = tied_options(list(aspec.settings()), x_key, split)
    fig.suptitle(f"{aspec.name}: accuracy after the attack" + (f" ({'; '.join(along)} along x)" if along else ""))
    handles = {lab: h for ax in axes.flat for h, lab in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(list(handles.values()), list(handles), loc="outside right upper",
               title=SHIFT_NOTE if moved else None, title_fontsize=7)  # fmt: skip
    return fig


def count_ticks(top: float) -> list[float]:
    """Plain ticks for a log count axis from 1 to ``top``: 1-2-5 steps over less than two
    decades, powers of ten over more.

    Example:
        >>> count_ticks(7), count_ticks(3000)
        ([1.0, 2.0, 5.0], [1.0, 10.0, 100.0, 1000.0])
    """
    steps = (1.0,) if top >= 100 else (1.0, 2.0, 5.0)
    out = [m * 10.0**e for e in range(int(math.log10(max(top, 1.0))) + 1) for m in steps]
    return [t for t in out if t <= top] or [1.0]


def hist_figure(plt: Any, layers: Mapping[str, Mapping[str, Any]], title: str) -> Any:
    """Per-tensor weight histograms, original against locked with the changed values
    filled, as small multiples at most 4 wide with one legend above them."""
    from matplotlib.ticker import NullFormatter

    nrows, ncols = grid_shape(len(layers))
    panel_w = max(2.35, 5.6 / ncols)  # a figure 6 inches wide at least
    panel_h = min(max(2.0, 0.6 * panel_w), 3.2)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_w * ncols + 0.4, panel_h * nrows + 1.1), squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax, (name, h) in zip(axes.flat, layers.items(), strict=False):
        lo, hi = h["range"]
        bins = len(h["original"])
        edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
        ax.stairs(h["original"], edges, label="original", color="tab:blue", lw=1.2)
        ax.stairs(h["locked"], edges, label="locked", color="tab:orange", ls="--", lw=1.2)
        # On top, half transparent: a few changed values at the tails must show.
        ax.stairs(h["changed"], edges, label="changed values", color="tab:red", fill=True, alpha=0.5)
        ax.set_yscale("log")
        top = max([*h["original"], *h["locked"], 1])
        ticks = count_ticks(top)
        ax.set_yticks(ticks, [tick_label(t) for t in ticks])
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0.7, top * 1.6)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    n = len(layers)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        if i + ncols >= n:  # nothing drawn below it
            ax.set_xlabel("weight value", fontsize=8)
        if i % ncols == 0:
            ax.set_ylabel("count (log scale)", fontsize=8)
    fig.suptitle(title)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3)
    return fig


def make_plots(rows: Sequence[ResultRow], config: EvalConfig, folder: str | Path) -> list[str]:
    """Writes the plots into ``folder``; returns their file names (only the plots made).

    * ``budget.png``: locked accuracy against the number of changed values;
    * ``<attack>.png``: accuracy after any attack that sweeps a numeric option (e.g.
      ``finetune.png``: fine-tuned and scratch accuracy against the data fraction);
    * ``hist-<scheme>.png``: per-tensor weight histograms, original against locked;
    * ``backdoor-*.png``: see :func:`advparams.reports.backdoors.backdoor_plots`;
    * ``detect-*.png``: see :func:`advparams.reports.detection.detection_plots`;
    * ``fp-*.png``: see :func:`advparams.reports.fingerprints.fingerprint_plots`;
    * ``trace-queries.png``: see :func:`advparams.reports.tracing.tracing_plots`.
    """
    from advparams.reports.backdoors import backdoor_plots
    from advparams.reports.detection import detection_plots
    from advparams.reports.fingerprints import fingerprint_plots
    from advparams.reports.tracing import tracing_plots

    plt = _pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made: list[str] = []
    clean = [r.accuracy for r in rows if r.kind == "clean" and r.accuracy is not None]
    locks = [r for r in rows if r.kind == "lock"]
    chance = locks[0].metrics.get("target_accuracy", 0.12) - 0.02 if locks else None
    refs = (clean, chance)
    with plt.rc_context(STYLE):
        fig = budget_figure(plt, rows, config, refs)
        if fig is not None:
            save(fig, plt, folder, "budget.png", made)
        for aspec in config.attacks:
            fig = attack_figure(plt, rows, config, aspec, refs)
            if fig is not None:
                save(fig, plt, folder, f"{aspec.name}.png", made)
        for r in rows:  # the first seed's, one row per scheme
            if r.kind == "histogram" and r.metrics:
                title = f"{r.scheme}, seed {r.seed}: weights of the touched tensors"
                save(hist_figure(plt, r.metrics, title), plt, folder, f"hist-{r.scheme}.png", made)
        made += backdoor_plots(rows, config, folder, plt)
        made += detection_plots(rows, config, folder, plt)
        made += fingerprint_plots(rows, config, folder, plt)
        made += tracing_plots(rows, config, folder, plt)
    return made


__all__ = [
    "DPI",
    "attack_figure",
    "attribute_doc",
    "axis_label",
    "budget_figure",
    "coinciding",
    "count_ticks",
    "dodge",
    "draw_series",
    "enough_points",
    "grid_shape",
    "hist_figure",
    "make_plots",
    "outside_legend",
    "save",
    "set_ticks",
    "same_curves",
    "shifted",
    "simplify",
    "sweep_keys",
    "tied_options",
    "tick_label",
    "tick_values",
]
