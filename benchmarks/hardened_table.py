"""Hardened lock (docs/hardened.md): the table of every hardened-locking target against every design, from the
rows of one harness run (no model is run; mean ± std over the run's seeds).

    .venv/bin/python benchmarks/hardened_table.py docs/evaluation/hardened

A mark says whether the mean meets the target (✓) or not (✗); "adv." is the accuracy
minus that of the same attack, on the same samples, against a freshly initialised
network (the attack's ``scratch`` baseline), in points.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from advparams.evaluation import open_run
from advparams.evaluation.rows import ResultRow
from advparams.reports import mean_std

Rows = list[ResultRow]


def _setting(r: ResultRow) -> str:
    return json.dumps(r.setting, sort_keys=True)


def _cell(values: list[float], limit: float | None, *, pct: bool = True, digits: int = 2) -> str:
    if not values:
        return "–"
    scaled = [100.0 * v for v in values] if pct else values
    m, s = mean_std(scaled)
    text = f"{m:.{digits}f} ± {s:.{digits}f}" if len(scaled) > 1 else f"{m:.{digits}f}"
    if limit is None:
        return text
    return text + (" ✓" if m <= limit + 1e-9 else " ✗")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="harness run folder or its report folder (results.jsonl)")
    ap.add_argument("--classes", type=int, default=10, help="number of classes (chance = 1/classes)")
    ap.add_argument("--plot", type=Path, help="also write the trade-off plot (PNG) here")
    args = ap.parse_args()
    rows = open_run(args.run).rows()
    chance = 100.0 / args.classes
    schemes = list(dict.fromkeys(r.scheme for r in rows if r.kind == "lock"))
    base: dict[tuple[str | None, str, int], float] = {}
    for r in rows:
        if r.kind == "baseline" and r.accuracy is not None:
            base[(r.attack, _setting(r), r.seed)] = r.accuracy
    attacks: dict[tuple[str, str, str], Rows] = defaultdict(list)
    for r in rows:
        if r.kind == "attack" and r.scheme is not None and r.attack is not None:
            attacks[(r.scheme, r.attack, _setting(r))].append(r)
    settings = list(dict.fromkeys((r.attack, _setting(r)) for r in rows if r.kind == "attack"))

    def acc_row(label: str, attack: str, setting: str, limit: float | None, advantage: bool = False) -> list[str]:
        out = [label]
        for s in schemes:
            rs = attacks.get((s, attack, setting), [])
            cell = _cell([r.accuracy for r in rs if r.accuracy is not None], limit)
            if advantage:
                gaps = [r.accuracy - base[(attack, setting, r.seed)] for r in rs if (attack, setting, r.seed) in base]
                if gaps:
                    cell += f" (adv. {_cell(gaps, None)})"
            out.append(cell)
        return out

    table: list[list[str]] = []
    locks = {s: [r for r in rows if r.kind == "lock" and r.scheme == s] for s in schemes}
    table.append(
        [f"T1 locked accuracy ≤ {chance + 2:.0f}%"]
        + [_cell([r.accuracy for r in locks[s]], chance + 2) for s in schemes]
    )
    for attack, setting in settings:
        if attack != "finetune":
            continue
        opts = json.loads(setting)
        label = f"T2 fine-tuning advantage ≤ 0 at {100 * opts['data_fraction']:g}% ({opts['epochs']} ep), pp"
        cells = []
        for s in schemes:
            rs = attacks.get((s, attack, setting), [])
            gaps = [r.accuracy - base[(attack, setting, r.seed)] for r in rs if (attack, setting, r.seed) in base]
            cells.append(_cell(gaps, 0.0))
        table.append([label, *cells])
    for attack, setting in settings:
        if attack == "finetune":
            continue
        opts = ", ".join(f"{k} {v}" for k, v in json.loads(setting).items())
        label = f"T3 {attack}{f' ({opts})' if opts else ''} ≤ {chance + 10:.0f}%"
        has_base = any((attack, setting, seed) in base for seed in {r.seed for r in rows})
        table.append(acc_row(label, attack, setting, chance + 10, advantage=has_base))
    stealth = {s: [r for r in rows if r.kind == "stealth" and r.scheme == s] for s in schemes}
    ks = []
    for s in schemes:
        rejected = [sum(t["p_value"] < r.metrics["alpha"] for t in r.metrics["per_tensor"]) for r in stealth[s]]
        tensors = [len(r.metrics["per_tensor"]) for r in stealth[s]]
        ks.append(f"{sum(rejected)} of {sum(tensors)}" + (" ✓" if sum(rejected) == 0 else " ✗"))
    table.append(["T4 per-tensor KS tests rejected (all seeds)", *ks])
    worst = []
    for s in schemes:
        by_attack: dict[str, list[float]] = defaultdict(list)
        for (scheme, attack, setting), rs in attacks.items():
            if scheme == s:
                for r in rs:
                    if "precision" in r.metrics:
                        by_attack[f"{attack} {setting}"].append(r.metrics["precision"])
        if not by_attack:
            worst.append("–")
            continue
        name, vals = max(by_attack.items(), key=lambda kv: mean_std(kv[1])[0])
        worst.append(f"{_cell(vals, 10.0)} ({name.split(' ')[0]})")
    table.append(["T4 detection precision ≤ 10% (worst detector), %", *worst])
    total = locks[schemes[0]][0].metrics["params_total"]
    table.append(
        ["values changed (no target)"]
        + [_cell([r.metrics["params_changed"] for r in locks[s]], None, pct=False, digits=0) for s in schemes]
    )
    listed, sizes = [], []
    for s in schemes:
        # Rows from before issue 29 do not hold the key's size: "not recorded" (never read
        # from key files, which the committed run folders do not hold).
        kept = [r.metrics for r in locks[s] if "key_bytes" in r.metrics]
        if not kept:
            listed.append("not recorded")
            sizes.append("not recorded")
            continue
        cell = _cell([float(m["key_values"]) for m in kept], total / 100, pct=False, digits=0)
        if any(m["key_secret"] for m in kept):
            cell += " + 32-byte secret"
        listed.append(cell)
        sizes.append(_cell([float(m["key_bytes"]) for m in kept], None, pct=False, digits=0))
    table.append([f"T5 values listed in the key ≤ 1% ({total / 100:.0f})", *listed])
    table.append(["key file, bytes", *sizes])
    table.append(
        ["T5 lock seconds ≤ 60; bit-exact unlock"]
        + [
            _cell([r.seconds for r in locks[s]], 60.0, pct=False)
            + (" ✓" if all(r.metrics.get("bit_exact") for r in locks[s]) else " ✗")
            for s in schemes
        ]
    )
    if args.plot is not None:
        trade_off_plot(args.plot, schemes, locks, attacks, base, settings)
    print("| target | " + " | ".join(schemes) + " |")
    print("|---|" + "---|" * len(schemes))
    for line in table:
        print("| " + " | ".join(line) + " |")


def trade_off_plot(
    path: Path,
    schemes: list[str],
    locks: dict[str, Rows],
    attacks: dict[tuple[str, str, str], Rows],
    base: dict[tuple[str | None, str, int], float],
    settings: list[tuple[str | None, str]],
) -> None:
    """Fine-tuning advantage (mean over seeds, per data fraction) against the number of
    values the lock changes, one point per design; the key size is in the label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for attack, setting in settings:
        if attack != "finetune":
            continue
        xs, ys, labels = [], [], []
        for s in schemes:
            rs = [r for r in attacks.get((s, attack, setting), []) if (attack, setting, r.seed) in base]
            if rs:
                xs.append(mean_std([float(r.metrics["params_changed"]) for r in locks[s]])[0])
                ys.append(mean_std([100 * (r.accuracy - base[(attack, setting, r.seed)]) for r in rs])[0])
                labels.append(s)
        frac = json.loads(setting)["data_fraction"]
        ax.plot(xs, ys, "o", label=f"{100 * frac:g}% of the data")
        for x, y, s in zip(xs, ys, labels, strict=True):
            ax.annotate(s, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("values changed by the lock (log)")
    ax.set_ylabel("fine-tuning advantage over scratch (pp)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
