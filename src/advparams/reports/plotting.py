"""What every plot of a report shares (matplotlib, loaded lazily): the standard a figure
keeps so that it reads at its saved size, and the pure helpers behind it (ticks, grids,
series that coincide), which the families' report modules and :mod:`advparams.reports.plots`
use alike."""

from __future__ import annotations

import inspect
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from advparams.errors import AdvParamsError
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


def pyplot():  # type: ignore[no-untyped-def]
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


class Series:
    """One line: its label, points ``x -> values`` and look (colour and marker by owner)."""

    def __init__(self, label: str, points: Mapping[float, list[float]], style: int, dashed: bool = False):
        self.label, self.points, self.style, self.dashed = label, points, style, dashed


def draw_series(ax: Any, series: Sequence[Series], *, log: bool, tol: float) -> bool:
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


__all__ = [
    "ACCURACY",
    "DPI",
    "MARKERS",
    "SHIFT_NOTE",
    "STYLE",
    "WIDTH",
    "Series",
    "attribute_doc",
    "axis_label",
    "coinciding",
    "dodge",
    "draw_series",
    "enough_points",
    "grid_shape",
    "outside_legend",
    "pyplot",
    "same_curves",
    "save",
    "set_ticks",
    "shifted",
    "simplify",
    "tick_label",
    "tick_values",
]
