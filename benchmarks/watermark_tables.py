"""Watermarks (docs/watermarks.md): the page's tables that ``watermark_table.py`` does not
print, rebuilt from committed rows alone (no model is run):

    .venv/bin/python benchmarks/watermark_tables.py --table lock \\
        docs/evaluation/watermarks docs/evaluation/watermarks-vgg

Tables (``--table``):

* ``lock``: watermark, then lock (the config's ``lock_with``), one pair of columns per run:
  the locked model's test accuracy per seed (in bold above the lock's target, chance + 2
  points) and their mean; the unlocked copies that are bit-exact and their watermark
  accuracy (mean over seeds).
* ``must-show``: the issue's "Must show" items, one column per run; ``--cost`` gives each
  run's rows of ``benchmarks/watermark_cost.py`` (the matched control), in the runs'
  order. A note that holds for every run is written in the first column only.
* ``tracing``: the rows of ``benchmarks/watermark_tracing.py`` (``--rows``; no run folder):
  each user's copy queried with every user's key (% of the key answered with the
  watermark label), and whether the copies are told apart (every copy scores highest on
  its own user's key and below 50 % on every other's).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from advparams.evaluation import open_run
from advparams.evaluation.rows import ResultRow
from advparams.reports import fmt_pct, mean_std, table

MODELS = {"lenet": "LeNet-5", "vgg": "VGG-style net"}
CLASSES = 10  # Fashion-MNIST: the lock's target is chance + 2 points
TESTS = (
    "LSB round trip (`tests/unit/watermarks/test_lsb_users.py`), fingerprint uniqueness and unknown/forged "
    "rejection (same file and `test_schemes.py`), threshold calibration against SciPy's binomial and on null "
    "models (`test_calibration.py`, `test_contract.py`), each attack on a tiny model "
    "(`tests/unit/attacks/test_watermark_attacks.py` and the attack contract tests), the harness "
    "(`tests/unit/evaluation/test_watermark_harness.py`), the CLI (`tests/unit/test_cli_watermark.py`), one slow "
    "test on real Fashion-MNIST"
)


class Run:
    """One watermark evaluation: its config, its watermark rows by scheme (seed order)."""

    def __init__(self, folder: Path) -> None:
        run = open_run(folder)
        self.config = run.read_config()
        self.rows = run.rows()
        self.names = [w.title for w in self.config.watermarks]
        self.marks: dict[str, list[ResultRow]] = defaultdict(list)
        for r in sorted(self.rows, key=lambda r: r.seed):
            if r.kind == "watermark":
                self.marks[str(r.scheme)].append(r)
        self.clean = {r.seed: float(r.accuracy or 0) for r in self.rows if r.kind == "clean"}

    @property
    def model(self) -> str:
        return MODELS.get(self.config.model, self.config.model)


def _pct(x: float) -> str:
    """100 % exactly as '100', else one decimal."""
    return "100" if x >= 1.0 else f"{100 * x:.1f}"


def _sci(x: float) -> str:
    """1e-06 as '1e-6'."""
    mantissa, exponent = f"{x:e}".split("e")
    m = f"{float(mantissa):g}"
    return f"{m}e{int(exponent)}"


def lock(runs: list[Run]) -> str:
    target = 100.0 / CLASSES + 2.0
    header = ["watermark"]
    for run in runs:
        rs = [r for rows in run.marks.values() for r in rows if "then_lock" in r.metrics]
        scheme = rs[0].metrics["then_lock"]["scheme"] if rs else "?"
        header += [
            f"{run.model}, {scheme}: locked acc % per seed (mean)",
            "unlocked: bit-exact, watermark acc %",
        ]
    body = []
    for name in runs[0].names:
        line = [name]
        for run in runs:
            ms = [r.metrics["then_lock"] for r in run.marks.get(name, []) if "then_lock" in r.metrics]
            if not ms:
                line += ["–", "–"]
                continue
            accs = [100 * float(m["locked_accuracy"]) for m in ms]
            seeds = " / ".join(f"**{a:.2f}**" if a > target + 1e-9 else f"{a:.2f}" for a in accs)
            line.append(f"{seeds} ({mean_std(accs)[0]:.2f})")
            exact = sum(bool(m["unlocked_bit_exact"]) for m in ms)
            line.append(f"{exact}/{len(ms)}, {fmt_pct([m['unlocked_watermark_accuracy'] for m in ms])}")
        body.append(line)
    return table(header, body)


def _control(path: Path) -> dict[tuple[str, int], float]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            c = json.loads(line)
            for w, v in c["cost_vs_control_pp"].items():
                out[(w, int(c["seed"]))] = float(v)
    return out


def must_show(runs: list[Run], costs: list[Path]) -> str:
    if len(costs) != len(runs):
        raise SystemExit("--cost: one file of watermark_cost.py rows per run, in the runs' order")
    cells: dict[str, list[str]] = defaultdict(list)
    met: dict[str, bool] = defaultdict(lambda: True)
    for i, (run, cost) in enumerate(zip(runs, costs, strict=True)):
        first = i == 0
        added = run.marks["additional-class"]
        acc = [float(r.metrics["watermark_accuracy"]) for r in added]
        cells["accuracy"].append(f"{fmt_pct(acc)}%")
        met["accuracy"] &= all(a >= 1.0 for a in acc)
        success = mean_std([float(r.metrics["authentication_success"]) for r in added])[0]
        users = sum(int(r.metrics["users"]) for r in added)
        authenticated = sum(int(r.metrics["users_authenticated"]) for r in added)
        rejected = min(min(float(r.metrics["forged_rejected"]), float(r.metrics["unknown_rejected"])) for r in added)
        cells["auth"].append(
            f"{_pct(success)}% ({authenticated}/{users} users), forged and unknown rejected {_pct(rejected)}%"
        )
        met["auth"] &= success >= 1.0 and authenticated == users and rejected >= 1.0
        control = _control(cost)
        before, vs_control, worst = [], [], []
        for name in run.names:
            rs = run.marks[name]
            before.append(mean_std([100 * (run.clean[r.seed] - float(r.accuracy or 0)) for r in rs])[0])
            seeds = [control[(name, r.seed)] for r in rs]
            vs_control.append(mean_std(seeds)[0])
            worst += seeds
        cells["cost"].append(
            f"{min(before):.2f} to {max(before):.2f} pp against the model before embedding; "
            f"{min(vs_control):.2f}-{max(vs_control):.2f} pp (worst seed {max(worst):.2f}) against a matched control"
        )
        met["cost"] &= max(worst) <= 1.0
        fps = {name: sum(int(r.metrics["null_false_positives"]) for r in run.marks[name]) for name in run.names}
        checks = {name: sum(len(r.metrics["null_scores"]) for r in run.marks[name]) for name in run.names}
        total = max(checks.values())
        note = f" ({run.config.null_models} null models x {len(run.marks[run.names[0]])} key sets)" if first else ""
        cells["fp"].append(f"{max(fps.values())}/{total} per scheme{note}")
        met["fp"] &= max(fps.values()) == 0 and run.config.null_models >= 5
        note = " (binomial tail at the pooled null rate, above every null score)" if first else ""
        cells["fpr"].append(f"{_sci(run.config.fpr)}{note}")
        cells["attacks"].append("the tables above and the full report")
        cells["tests"].append(TESTS if first else "")

    def status(key: str) -> str:
        return "met" if met[key] else "not met"

    body = [
        ["watermark accuracy (additional class)", *cells["accuracy"], status("accuracy")],
        ["fingerprint authentication rate", *cells["auth"], status("auth")],
        ["clean accuracy cost at most 1 point", *cells["cost"], status("cost")],
        ["zero false positives on at least 5 null models", *cells["fp"], status("fp")],
        ["the false-positive rate the threshold was set for", *cells["fpr"], "stated"],
        ["retention and clean accuracy after each attack, all schemes side by side", *cells["attacks"], "shown"],
        ["tests that could fail", *cells["tests"], "done"],
    ]
    return table(["item", *[r.model for r in runs], ""], body)


def tracing(path: Path) -> str:
    rows: list[dict[str, Any]] = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    users = sorted({u for r in rows for u in r["scores"]}, key=lambda u: int(u.rsplit("-", 1)[1]))
    header = ["scheme", *[f"copy of user {u.rsplit('-', 1)[1]}" for u in users], "copies told apart"]
    body = []
    for r in rows:
        line = [f"`{r['scheme']}`"]
        others = []
        for copy in users:
            scores = r["scores"][copy]
            line.append(" / ".join(f"{100 * scores[u]:.0f}" for u in users))
            others += [100 * scores[u] for u in users if u != copy]
        apart = int(r["traced_cleanly"]) == len(users)
        if apart:
            verdict = f"yes: other users' keys at most {max(others):.0f}%"
        else:
            verdict = (
                f"no ({r['traced_cleanly']} of {len(users)} copies highest on their own user's key and below 50 % "
                "on every other's): "
                f"other users' keys score {min(others):.0f}-{max(others):.0f}%"
            )
        line.append(verdict)
        body.append(line)
    return table(header, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", type=Path, help="watermark evaluation run folders, one column each")
    parser.add_argument("--table", choices=["lock", "must-show", "tracing"], required=True, help="which table")
    parser.add_argument("--cost", nargs="+", type=Path, default=[], help="watermark_cost.py rows, one per run")
    parser.add_argument("--rows", type=Path, help="watermark_tracing.py rows (--table tracing)")
    args = parser.parse_args()
    if args.table == "tracing":
        if args.rows is None:
            parser.error("--table tracing needs --rows")
        print(tracing(args.rows))
        return
    if not args.runs:
        parser.error(f"--table {args.table} needs at least one run folder")
    runs = [Run(f) for f in args.runs]
    print(lock(runs) if args.table == "lock" else must_show(runs, args.cost))


if __name__ == "__main__":
    main()
