"""Watermarks (docs/watermarks.md): the summary tables of docs/watermarks.md, rebuilt from a run's rows alone.

Prints (Markdown) the per-watermark table (accuracy, cost, watermark accuracy, threshold,
null scores, false positives) and the attacks x watermarks retention table; with
``--cost`` also the cost against the matched control of ``benchmarks/watermark_cost.py``;
``--table summary`` or ``--table retention`` prints only that one (what the docs'
generated blocks quote).

    .venv/bin/python benchmarks/watermark_table.py runs/eval/watermarks \\
        --cost docs/benchmarks/watermark_cost.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from advparams.evaluation import open_run
from advparams.reports import fmt_num, fmt_pct, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="+", help="run folder(s) of one watermark evaluation (rows are pooled)")
    parser.add_argument("--cost", help="rows of benchmarks/watermark_cost.py")
    parser.add_argument("--table", choices=["summary", "retention"], help="print only this table")
    args = parser.parse_args()
    cfg = open_run(args.run[0]).read_config()
    rows = [r for run in args.run for r in open_run(run).rows()]
    clean = {r.seed: r.accuracy for r in rows if r.kind == "clean"}
    control: dict[tuple[str, int], float] = {}
    if args.cost:
        for line in Path(args.cost).read_text().splitlines():
            c = json.loads(line)
            for w, v in c["cost_vs_control_pp"].items():
                control[(w, c["seed"])] = v
    marks = defaultdict(list)
    for r in rows:
        if r.kind == "watermark":
            marks[r.scheme].append(r)
    names = [w.title for w in cfg.watermarks]
    out = []
    for w in names:
        rs = sorted(marks[w], key=lambda r: r.seed)
        thr = [r.metrics["threshold"] for r in rs]
        nulls = [s for r in rs for s in r.metrics["null_scores"]]
        out.append(
            [
                w,
                fmt_pct([clean[r.seed] for r in rs]),
                fmt_pct([r.accuracy for r in rs]),
                fmt_num([100 * (clean[r.seed] - r.accuracy) for r in rs]),
                fmt_num([control[(w, r.seed)] for r in rs]) if control else "–",
                fmt_pct([r.metrics["watermark_accuracy"] for r in rs]),
                " / ".join("unreachable" if t is None else f"{100 * t:.0f}" for t in thr),
                f"{100 * min(nulls):.0f}-{100 * max(nulls):.0f}",
                f"{sum(r.metrics['null_false_positives'] for r in rs)}/{len(nulls)}",
                f"{sum(bool(r.metrics['verified']) for r in rs)}/{len(rs)}",
            ]
        )
    header = [
        "watermark",
        "clean %",
        "watermarked %",
        "cost vs clean (pp)",
        "cost vs control (pp)",
        "watermark acc %",
        f"threshold % per seed (fpr {cfg.fpr:g})",
        "null scores %",
        "null false positives",
        "verified",
    ]
    if args.table in (None, "summary"):
        print(table(header, out))
    if args.table is None:
        print()
    attacks = defaultdict(list)
    for r in rows:
        if r.kind == "wm-attack":
            attacks[(r.attack, r.scheme, json.dumps(r.setting, sort_keys=True))].append(r)
    out = []
    for aspec in cfg.attacks:
        for setting in aspec.settings():
            k = json.dumps(setting, sort_keys=True)
            label = aspec.name + (" (" + ", ".join(f"{a}={b}" for a, b in setting.items()) + ")" if setting else "")
            cells = []
            for w in names:
                rs = attacks.get((aspec.name, w, k), [])
                verified = sum(bool(r.metrics["verified"]) for r in rs)
                cells.append(f"{fmt_pct([r.metrics['retention'] for r in rs])} ({verified}/{len(rs)})" if rs else "–")
            out.append([label, *cells])
    if args.table in (None, "retention"):
        print(table(["attack", *names], out))


if __name__ == "__main__":
    main()
