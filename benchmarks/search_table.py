"""The greedy and the batched AdvParams search side by side (docs/advparams.md, "The evaluation
report with the old and the new search"), from the AdvParams rows of two harness runs of the
same config (no model is run; test accuracy in %, mean over the seeds, ± the sample std
where the cell says so):

    .venv/bin/python benchmarks/search_table.py docs/evaluation/fashion-mnist docs/evaluation/fashion-mnist-batched
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from advparams.evaluation import open_run
from advparams.evaluation.rows import ResultRow
from advparams.reports import mean_std

Rows = list[ResultRow]


def _pick(rows: Rows, kind: str, attack: str | None = None, **setting: Any) -> Rows:
    out = [
        r
        for r in rows
        if r.kind == kind
        and r.scheme == "advparams"
        and r.attack == attack
        and all(r.setting.get(k) == v for k, v in setting.items())
    ]
    return sorted(out, key=lambda r: r.seed)


def _acc(rows: Rows, std: bool = False) -> str:
    m, s = mean_std([100 * float(r.accuracy) for r in rows if r.accuracy is not None])
    return f"{m:.2f} ± {s:.2f}" if std else f"{m:.2f}"


def _advantage(rows: Rows, all_rows: Rows, fraction: float) -> str:
    base = {r.seed: float(r.accuracy) for r in all_rows if r.kind == "baseline" and r.attack == "finetune"
            and r.setting.get("data_fraction") == fraction and r.accuracy is not None}  # fmt: skip
    gaps = [100 * (float(r.accuracy) - base[r.seed]) for r in rows if r.seed in base and r.accuracy is not None]
    return f"{mean_std(gaps)[0]:.2f}"


def lines(run: Rows) -> list[tuple[str, str]]:
    """(measure, cell) for one run."""
    locks = _pick(run, "lock")
    out: list[tuple[str, str]] = [
        ("locked accuracy", _acc(locks, std=True)),
        ("values changed, per seed", " / ".join(str(r.metrics["params_changed"]) for r in locks)),
        ("lock seconds", "{:.2f} ± {:.2f}".format(*mean_std([float(r.seconds) for r in locks]))),
    ]
    seq: Callable[[list[str]], str] = " / ".join
    budgets = [5, 10, 20]
    out.append(
        (
            f"locked accuracy at a fixed budget of {seq([str(b) for b in budgets])} values (no early stop)",
            seq([_acc(_pick(run, "budget", budget=b)) for b in budgets]),
        )
    )
    fractions = [0.01, 0.05, 0.1, 0.2]
    tuned = [_pick(run, "attack", "finetune", data_fraction=f) for f in fractions]
    pct = seq([f"{100 * f:g}" for f in fractions])
    epochs = sorted({int(r.metrics["options"]["epochs"]) for t in tuned for r in t})
    out.append(
        (
            f"fine-tuning with {pct} % of the data ({'/'.join(map(str, epochs))} epochs), after",
            seq([_acc(t) for t in tuned]),
        )
    )
    out.append(
        (
            "... attacker advantage over training from scratch (points)",
            seq([_advantage(t, run, f) for t, f in zip(tuned, fractions, strict=True)]),
        )
    )
    out.append(
        (
            "pruning 50 %, global / per layer",
            seq([_acc(_pick(run, "attack", "prune", rate=0.5, scope=s)) for s in ("global", "layer")]),
        )
    )
    suspects = [10, 50, 200]
    out.append(
        (
            f"retrace, {seq([str(n) for n in suspects])} suspects, after",
            seq([_acc(_pick(run, "attack", "retrace", num_suspects=n)) for n in suspects]),
        )
    )
    out.append(
        (
            "outlier reset (extreme values, re-optimised), after",
            _acc(_pick(run, "attack", "outlier-reset", method="extreme", reset="reoptimise"), std=True),
        )
    )
    leaks = [0.1, 0.3, 0.5, 0.7, 0.9]
    out.append(
        (
            f"key leak of {seq([f'{100 * f:g}' for f in leaks])} % of the entries, after",
            seq([_acc(_pick(run, "attack", "key-leak", fraction=f)) for f in leaks]),
        )
    )
    out.append(
        (
            "clipping to the 5th-95th percentiles, after",
            _acc(_pick(run, "attack", "clip", low=5.0, high=95.0), std=True),
        )
    )
    out.append(("relabelling, after", _acc(_pick(run, "attack", "relabel"), std=True)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("greedy", type=Path, help="the run (or report folder) made with the greedy search")
    ap.add_argument("batched", type=Path, help="the run (or report folder) made with the batched search")
    args = ap.parse_args()
    old, new = lines(open_run(args.greedy).rows()), lines(open_run(args.batched).rows())
    print("| measure | greedy search (old) | batched search (new default) |")
    print("|---|---|---|")
    for (name, a), (_, b) in zip(old, new, strict=True):
        print(f"| {name} | {a} | {b} |")


if __name__ == "__main__":
    main()
