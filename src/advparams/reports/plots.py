"""PNG plots of an evaluation, from its rows alone (needs the ``report`` extra: matplotlib)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from advparams.errors import AdvParamsError
from advparams.evaluation.config import EvalConfig
from advparams.evaluation.rows import ResultRow
from advparams.reports._table import mean_std
from advparams.reports.backdoors import backdoor_plots
from advparams.reports.detection import detection_plots
from advparams.reports.fingerprints import fingerprint_plots
from advparams.reports.tracing import tracing_plots


def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise AdvParamsError("plots need matplotlib: pip install 'advparams[report]'") from None
    return plt


def _curve(points: dict[float, list[float]]) -> tuple[list[float], list[float], list[float]]:
    xs = sorted(points)
    ms, ss = zip(*(mean_std(points[x]) for x in xs), strict=True) if xs else ((), ())
    return xs, list(ms), list(ss)


def make_plots(rows: Sequence[ResultRow], config: EvalConfig, folder: str | Path) -> list[str]:
    """Writes the plots into ``folder``; returns their file names.

    * ``budget.png``: locked accuracy against the number of changed values;
    * ``finetune.png``: fine-tuned and scratch accuracy against the data fraction;
    * ``<attack>.png``: accuracy after any attack with one numeric grid option;
    * ``hist-<scheme>.png``: per-layer weight histograms, original against locked;
    * ``backdoor-*.png``: see :func:`advparams.reports.backdoors.backdoor_plots`;
    * ``detect-*.png``: see :func:`advparams.reports.detection.detection_plots`;
    * ``fp-*.png``: see :func:`advparams.reports.fingerprints.fingerprint_plots`;
    * ``trace-queries.png``: see :func:`advparams.reports.tracing.tracing_plots`.
    """
    plt = _pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made: list[str] = []
    schemes = [s.title for s in config.schemes]
    clean = [r.accuracy for r in rows if r.kind == "clean" and r.accuracy is not None]
    chance = None
    locks = [r for r in rows if r.kind == "lock"]
    if locks:
        chance = locks[0].metrics.get("target_accuracy", 0.12) - 0.02

    def finish(fig, ax, name: str, xlabel: str, xlog: bool = False) -> None:  # type: ignore[no-untyped-def]
        if clean:
            ax.axhline(100 * sum(clean) / len(clean), color="grey", ls=":", lw=1, label="clean (mean)")
        if chance is not None:
            ax.axhline(100 * chance, color="grey", ls="--", lw=1, label="chance")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy %")
        if xlog:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        made.append(name)

    # Accuracy against size.
    budget = [r for r in rows if r.kind == "budget"]
    if budget:
        fig, ax = plt.subplots(figsize=(6, 4))
        for s in schemes:
            pts: dict[float, list[float]] = defaultdict(list)
            for r in budget:
                if r.scheme == s and r.accuracy is not None:
                    pts[float(r.metrics["params_changed"])].append(100 * r.accuracy)
            if pts:
                xs, ms, ss = _curve(pts)
                ax.errorbar(xs, ms, yerr=ss, marker="o", ms=3, capsize=2, label=s)
        ax.set_title("Locked accuracy against changed values")
        finish(fig, ax, "budget.png", "values changed (key entries)", xlog=True)

    # Attacks with a numeric grid option.
    attack_rows = [r for r in rows if r.kind in ("attack", "baseline")]
    for aspec in config.attacks:
        numeric = [k for k, v in aspec.grid.items() if all(isinstance(x, (int, float)) for x in v)]
        if not numeric:
            continue
        x_key = numeric[0]
        fig, ax = plt.subplots(figsize=(6, 4))
        lines: dict[tuple[str, str], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in attack_rows:
            if r.attack != aspec.name or r.accuracy is None or x_key not in r.setting:
                continue
            others = {k: v for k, v in r.setting.items() if k != x_key}
            who = r.scheme or "?"
            lines[(who, json.dumps(others, sort_keys=True))][float(r.setting[x_key])].append(100 * r.accuracy)
        for (who, rest), pts in sorted(lines.items()):
            xs, ms, ss = _curve(pts)
            extra = ", ".join(f"{k}={v}" for k, v in json.loads(rest).items())
            style = "--" if who == "scratch" else "-"
            ax.errorbar(
                xs, ms, yerr=ss, ls=style, marker="o", ms=3, capsize=2, label=who + (f" ({extra})" if extra else "")
            )
        ax.set_title(f"{aspec.name}: accuracy against {x_key}")
        finish(fig, ax, f"{aspec.name}.png", x_key)

    # Weight histograms, first seed.
    for r in rows:
        if r.kind != "histogram" or not r.metrics:
            continue
        layers = r.metrics
        n = len(layers)
        fig, axes = plt.subplots(1, n, figsize=(max(6.0, 3.2 * n), 3.2), squeeze=False)
        for ax, (name, h) in zip(axes[0], layers.items(), strict=True):
            lo, hi = h["range"]
            bins = len(h["original"])
            edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
            ax.stairs(h["original"], edges, label="original", color="tab:blue")
            ax.stairs(h["locked"], edges, label="locked", color="tab:orange", ls="--")
            ax.stairs(h["changed"], edges, label="changed values", color="tab:red", fill=True, alpha=0.6)
            ax.set_yscale("log")
            ax.set_title(name, fontsize=8)
            ax.tick_params(labelsize=7)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{r.scheme}, seed {r.seed}: weights of the touched tensors (red: the changed values)", fontsize=9)
        fig.tight_layout()
        name = f"hist-{r.scheme}.png"
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
        made.append(name)
    made += backdoor_plots(rows, config, folder, plt)
    made += detection_plots(rows, config, folder, plt)
    made += fingerprint_plots(rows, config, folder, plt)
    made += tracing_plots(rows, config, folder, plt)
    return made
