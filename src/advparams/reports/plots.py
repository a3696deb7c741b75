"""PNG plots of an evaluation, from its rows alone (needs the ``report`` extra: matplotlib).

Every figure keeps one standard, so that it reads at its saved size: 6-10 inches wide at
:data:`DPI`, axes labelled with their units, legends outside the data, every series
visible (distinct markers; lines that coincide are drawn a little apart along x, and the
legend says so) and no figure for fewer than two x values: a single point is a number,
and the report's table already holds it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from advparams.evaluation.config import EvalConfig
from advparams.evaluation.rows import ResultRow
from advparams.reports.plotting import (
    ACCURACY,
    SHIFT_NOTE,
    STYLE,
    WIDTH,
    Series,
    attribute_doc,
    axis_label,
    draw_series,
    enough_points,
    grid_shape,
    outside_legend,
    pyplot,
    set_ticks,
    tick_label,
)


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
            series.append(Series(s, pts, i))
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
            Series(who, {scale * x: v for x, v in pts.items()}, order.get(who, len(order)), dashed=who == "scratch")
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
    """Writes every family's plots (:attr:`advparams.house.Family.plots`, in family order)
    into ``folder``; returns their file names (only the plots made).

    * ``budget.png``, ``<attack>.png`` and ``hist-<scheme>.png``: the locks' (see
      :func:`advparams.reports.locks.lock_plots`), e.g. ``finetune.png``: fine-tuned and
      scratch accuracy against the data fraction;
    * ``backdoor-*.png``: see :func:`advparams.reports.backdoors.backdoor_plots`;
    * ``detect-*.png``: see :func:`advparams.reports.detection.detection_plots`;
    * ``fp-*.png``: see :func:`advparams.reports.fingerprints.fingerprint_plots`;
    * ``trace-queries.png``: see :func:`advparams.reports.tracing.tracing_plots`.
    """
    from advparams.house import families

    plt = pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made: list[str] = []
    with plt.rc_context(STYLE):
        for family in families():
            if family.plots is not None:
                made += family.plots(rows, config, folder, plt)
    return made


__all__ = ["attack_figure", "budget_figure", "count_ticks", "hist_figure", "make_plots", "sweep_keys", "tied_options"]
