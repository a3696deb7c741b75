"""The scheme comparison of docs/evaluation.md ("Results on Fashion-MNIST"), from the rows of
one harness run (no model is run; mean ± sample std over the run's seeds):

    .venv/bin/python benchmarks/scheme_table.py docs/evaluation/fashion-mnist

One column per scheme of the run. Attacks on an unlocked scheme (``random`` changes
values without locking) print "–"; pruning's cell is the rate and scope with the highest
mean accuracy over the seeds, and "(unlocked)" for a scheme whose locked accuracy is
within 5 points of the clean model's.
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


def _ms(values: list[float], digits: int = 2, sign: bool = False) -> str:
    if not values:
        return "–"
    m, s = mean_std(values)
    return f"{m:+.{digits}f} ± {s:.{digits}f}" if sign else f"{m:.{digits}f} ± {s:.{digits}f}"


class Table:
    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.schemes = list(dict.fromkeys(r.scheme for r in rows if r.kind == "lock" and r.scheme is not None))
        self.clean = {r.seed: float(r.accuracy) for r in rows if r.kind == "clean" and r.accuracy is not None}

    def pick(self, kind: str, scheme: str | None, attack: str | None = None, **setting: Any) -> Rows:
        return sorted(
            (
                r
                for r in self.rows
                if r.kind == kind
                and r.scheme == scheme
                and r.attack == attack
                and all(r.setting.get(k) == v for k, v in setting.items())
            ),
            key=lambda r: r.seed,
        )

    def locked(self, scheme: str) -> bool:
        locks = self.pick("lock", scheme)
        return bool(locks) and all(float(r.accuracy) < self.clean[r.seed] - 0.05 for r in locks)

    def acc(self, scheme: str, attack: str, **setting: Any) -> str:
        if not self.locked(scheme):
            return "–"
        return _ms([100 * float(r.accuracy) for r in self.pick("attack", scheme, attack, **setting)])

    def advantage(self, scheme: str, fraction: float) -> str:
        base = {r.seed: float(r.accuracy) for r in self.pick("baseline", "scratch", "finetune", data_fraction=fraction)}
        rs = self.pick("attack", scheme, "finetune", data_fraction=fraction)
        return _ms([100 * (float(r.accuracy) - base[r.seed]) for r in rs if r.seed in base], sign=True)

    def prune_best(self, scheme: str) -> str:
        """The pruning setting (rate and scope) with the highest mean accuracy over seeds."""
        if not self.locked(scheme):
            return "(unlocked)"
        by: dict[str, list[float]] = {}
        for r in self.pick("attack", scheme, "prune"):
            by.setdefault(repr(sorted(r.setting.items())), []).append(100 * float(r.accuracy))
        return _ms(max(by.values(), key=lambda v: mean_std(v)[0]))

    def detection(self, scheme: str) -> str:
        if not self.locked(scheme):
            return "–"
        rs = self.pick("attack", scheme, "outlier-reset", method="extreme", reset="median")
        p, r = (mean_std([100 * float(x.metrics[k]) for x in rs])[0] for k in ("precision", "recall"))
        return f"{p:.1f} / {r:.1f}"

    def stealth(self, scheme: str, what: str) -> str:
        rs = self.pick("stealth", scheme)
        if what == "extreme":
            m, s = mean_std([100 * float(r.metrics["share_extreme_1pct"]) for r in rs])
            return f"{m:.1f} ± {s:.1f} %"
        rejected = sum(int(r.metrics["tensors_rejected"]) for r in rs)
        return f"{rejected} of {sum(int(r.metrics['tensors']) for r in rs)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="harness run folder or its report folder (results.jsonl)")
    args = ap.parse_args()
    t = Table(open_run(args.run).rows())
    clean = _ms([100 * v for v in t.clean.values()])

    def changed(s: str) -> str:
        values = [float(r.metrics["params_changed"]) for r in t.pick("lock", s)]
        return f"{values[0]:.0f}" if len(set(values)) == 1 else _ms(values, 1)

    lines: list[tuple[str, Callable[[str], str]]] = [
        ("values changed", changed),
        (f"locked accuracy % (clean {clean})", lambda s: _ms([100 * float(r.accuracy) for r in t.pick("lock", s)])),
        ("fine-tune 1% / 5 epochs: advantage (pp)", lambda s: t.advantage(s, 0.01)),
        ("fine-tune 5%: advantage (pp)", lambda s: t.advantage(s, 0.05)),
        ("fine-tune 10%: advantage (pp)", lambda s: t.advantage(s, 0.1)),
        ("fine-tune 20%: advantage (pp)", lambda s: t.advantage(s, 0.2)),
        ("pruning 10–90%, global or per layer: best accuracy %", t.prune_best),
        ("retrace, 50 suspects, re-optimised on 256 samples %", lambda s: t.acc(s, "retrace", num_suspects=50)),
        ("retrace, 200 suspects %", lambda s: t.acc(s, "retrace", num_suspects=200)),
        (
            "extreme-value detection + re-optimise %",
            lambda s: t.acc(s, "outlier-reset", method="extreme", reset="reoptimise"),
        ),
        ("extreme-value detection: precision / recall %", t.detection),
        ("z-score detection + reset to median %", lambda s: t.acc(s, "outlier-reset", method="zscore", reset="median")),
        ("50% of the key leaked %", lambda s: t.acc(s, "key-leak", fraction=0.5)),
        ("clipping to 5th–95th percentiles %", lambda s: t.acc(s, "clip", low=5.0, high=95.0)),
        ("relabel (majority vote on 256 samples) %", lambda s: t.acc(s, "relabel")),
        ("changed values in their tensor's outer 1%", lambda s: t.stealth(s, "extreme")),
        ("per-tensor KS tests rejected (p < 0.05)", lambda s: t.stealth(s, "ks")),
    ]
    names = {"advparams": "AdvParams", "random": "random", "sfge": "SFGE", "nnsplitter": "NNSplitter"}
    print("| | " + " | ".join(names.get(s, s) for s in t.schemes) + " |")
    print("|---|" + "---|" * len(t.schemes))
    for label, fn in lines:
        print(f"| {label} | " + " | ".join(fn(s) for s in t.schemes) + " |")


if __name__ == "__main__":
    main()
