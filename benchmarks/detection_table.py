"""The detector x backdoor tables of docs/detection.md, from the ``detection`` rows of one
evaluation run (no model is run; means over the run's seeds):

    .venv/bin/python benchmarks/detection_table.py docs/evaluation/detection-fashion-mnist
    .venv/bin/python benchmarks/detection_table.py docs/evaluation/detection-fashion-mnist --verdicts adversarial

The table: TPR % at the first two calibrated false-rejection rates and the AUC, per backdoor
and detector (the run's labels), and the scoring time per image (range of the rows'
means). ``--verdicts DETECTOR``: for every other detector, on how many backdoors
DETECTOR has the higher mean AUC and the higher mean TPR at the first rate, naming
the backdoors where it has not.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from advparams.evaluation import open_run
from advparams.evaluation.rows import ResultRow
from advparams.reports import mean_std

Cell = dict[str, float]


def cells(rows: list[ResultRow]) -> tuple[list[str], list[str], list[str], dict[tuple[str, str], Cell]]:
    """Backdoors, detectors, rates and the mean measures of every (backdoor, detector)."""
    groups: dict[tuple[str, str], list[ResultRow]] = defaultdict(list)
    for r in rows:
        if r.kind == "detection" and r.scheme is not None and r.attack is not None:
            groups[(r.scheme, r.attack)].append(r)
    backdoors = list(dict.fromkeys(b for b, _ in groups))
    detectors = list(dict.fromkeys(d for _, d in groups))
    rates = sorted(next(iter(groups.values()))[0].metrics["tpr"], key=lambda f: -float(f)) if groups else []
    out: dict[tuple[str, str], Cell] = {}
    for key, rs in groups.items():
        m = {f"tpr{f}": mean_std([100 * r.metrics["tpr"][f] for r in rs])[0] for f in rates}
        m["auc"] = mean_std([r.metrics["auc"] for r in rs])[0]
        m["ms"] = mean_std([1000 * r.metrics["seconds_per_image"] for r in rs])[0]
        out[key] = m
    return backdoors, detectors, rates, out


def print_table(rows: list[ResultRow]) -> None:
    backdoors, detectors, rates, c = cells(rows)
    print("| backdoor | " + " | ".join(detectors) + " |")
    print("|---|" + "---|" * len(detectors))
    for b in backdoors:
        line = []
        for d in detectors:
            m = c.get((b, d))
            line.append("–" if m is None else " / ".join(f"{m[f'tpr{f}']:.1f}" for f in rates) + f", {m['auc']:.3f}")
        print(f"| {b} | " + " | ".join(line) + " |")
    times = []
    for d in detectors:
        ms = [c[(b, d)]["ms"] for b in backdoors if (b, d) in c]
        times.append(f"{min(ms):.2f}-{max(ms):.2f} ms")
    print("| time per image | " + " | ".join(times) + " |")


def print_verdicts(rows: list[ResultRow], mine: str) -> None:
    backdoors, detectors, rates, c = cells(rows)
    if mine not in detectors:
        raise SystemExit(f"no detector {mine!r} in the rows; they hold {', '.join(detectors)}")
    first = rates[0]
    print(f"| {mine} against | higher AUC | higher TPR at FRR {first} |")
    print("|---|---|---|")
    for d in detectors:
        if d == mine:
            continue
        shared = [b for b in backdoors if (b, mine) in c and (b, d) in c]
        verdict = []
        for key in ("auc", f"tpr{first}"):
            lost = [b for b in shared if c[(b, mine)][key] <= c[(b, d)][key]]
            text = f"{len(shared) - len(lost)} of {len(shared)}"
            verdict.append(text + (f" (not on {', '.join(lost)})" if lost else ""))
        print(f"| {d} | " + " | ".join(verdict) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="evaluation run folder or its report folder (results.jsonl)")
    ap.add_argument("--verdicts", metavar="DETECTOR", help="count the backdoors DETECTOR beats each other one on")
    args = ap.parse_args()
    rows = open_run(args.run).rows()
    if args.verdicts:
        print_verdicts(rows, args.verdicts)
    else:
        print_table(rows)


if __name__ == "__main__":
    main()
