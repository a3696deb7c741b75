"""The README's "Which lock should I use?" table, from the rows of one harness run (no model
is run; means over the run's seeds):

    .venv/bin/python benchmarks/comparison_table.py docs/evaluation/comparison

Columns: locked test accuracy (mean, and the worst seed); how many of the run's adaptive
attack settings (every attack but fine-tuning) keep the mean accuracy at or below
chance + 10 points, naming those that do not; the fine-tuning head start over a freshly
initialised net fine-tuned on the same samples (points, mean; one column per fine-tuning
case of the run, its data fraction and epochs in the header); the key (values it lists,
a shuffle secret, file bytes); lock seconds (mean, range); whether every unlock was
bit-exact.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from advparams.evaluation import open_run
from advparams.evaluation.rows import ResultRow
from advparams.reports import mean_std


def _setting(r: ResultRow) -> str:
    return json.dumps(r.setting, sort_keys=True)


def _undone(names: list[str], totals: dict[str, int]) -> str:
    """'retrace, 3 of 4 outlier-reset': each attack, with k of n where it has several settings."""
    counts: dict[str, int] = defaultdict(int)
    for n in names:
        counts[n] += 1
    return ", ".join(n if totals[n] == 1 else f"{k} of {totals[n]} {n}" for n, k in counts.items())


def comparison_rows(rows: list[ResultRow], classes: int = 10) -> tuple[list[str], list[list[str]]]:
    """The table's header and one line per scheme."""
    held_at = 1.0 / classes + 0.10
    schemes = list(dict.fromkeys(r.scheme for r in rows if r.kind == "lock" and r.scheme is not None))
    base = {
        (r.attack, _setting(r), r.seed): r.accuracy for r in rows if r.kind == "baseline" and r.accuracy is not None
    }
    attacks: dict[tuple[str, str, str], list[ResultRow]] = defaultdict(list)
    for r in rows:
        if r.kind == "attack" and r.scheme is not None and r.attack is not None and r.accuracy is not None:
            attacks[(r.scheme, r.attack, _setting(r))].append(r)
    settings = list(dict.fromkeys((str(r.attack), _setting(r)) for r in rows if r.kind == "attack"))
    tunes = [(a, s) for a, s in settings if a == "finetune"]
    adaptive = [(a, s) for a, s in settings if a != "finetune"]
    totals: dict[str, int] = defaultdict(int)
    for a, _ in adaptive:
        totals[a] += 1
    header = [
        "scheme",
        "locked accuracy, % (worst seed)",
        f"adaptive attacks held to ≤ {100 * held_at:.0f} % (of {len(adaptive)})",
    ]
    for _, s in tunes:
        o = json.loads(s)
        header.append(
            f"fine-tuning head start, points ({100 * o['data_fraction']:g} % of the data, {o['epochs']} epochs)"
        )
    header += ["key: values listed, bytes", "lock s (range)", "exact unlock"]
    body = []
    for scheme in schemes:
        locks = sorted((r for r in rows if r.kind == "lock" and r.scheme == scheme), key=lambda r: r.seed)
        accs = [100 * float(r.accuracy) for r in locks if r.accuracy is not None]
        line = [f"`{scheme}`", f"{mean_std(accs)[0]:.2f} ({max(accs):.2f})"]
        undone = []
        for a, s in adaptive:
            vals = [float(r.accuracy) for r in attacks.get((scheme, a, s), [])]
            if not vals or mean_std(vals)[0] > held_at + 1e-9:
                undone.append(a)
        held = len(adaptive) - len(undone)
        line.append(f"{held}" + (f": undone by {_undone(undone, totals)}" if undone else ""))
        for a, s in tunes:
            gaps = [
                100 * (float(r.accuracy) - base[(a, s, r.seed)])
                for r in attacks.get((scheme, a, s), [])
                if (a, s, r.seed) in base
            ]
            line.append(f"{mean_std(gaps)[0]:+.2f}" if gaps else "–")
        metrics = [r.metrics for r in locks]
        if metrics and all("key_bytes" in m for m in metrics):
            values = mean_std([float(m["key_values"]) for m in metrics])[0]
            secret = " + 32-byte secret" if any(m["key_secret"] for m in metrics) else ""
            line.append(f"{values:.0f}{secret}, {mean_std([float(m['key_bytes']) for m in metrics])[0]:.0f} B")
        else:
            line.append("not recorded")
        secs = [float(r.seconds) for r in locks if r.seconds is not None]
        line.append(f"{mean_std(secs)[0]:.2f} ({min(secs):.2f}-{max(secs):.2f})" if secs else "–")
        line.append("yes" if metrics and all(m.get("bit_exact") for m in metrics) else "no")
        body.append(line)
    return header, body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="harness run folder or its report folder (results.jsonl)")
    ap.add_argument("--classes", type=int, default=10, help="number of classes (chance = 1/classes)")
    args = ap.parse_args()
    header, body = comparison_rows(open_run(args.run).rows(), args.classes)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for line in body:
        print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    main()
