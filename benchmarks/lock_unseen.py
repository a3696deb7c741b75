"""Benchmark: how often does a lock that says it met its target miss it on unseen data?

For each model, each number of lock samples and each of ``--draws`` draws of lock
samples (seeds 1000, 1001, ...), lock with every case below and measure the locked
model's accuracy on the Fashion-MNIST *test* split, which no lock sees. A *miss* is a
lock that reports ``target_met`` (``advparams lock`` exits 0) with test accuracy above its
target (chance + 2 points, 12 %); an *uncertified* lock is one whose check set could not
certify the target (``advparams lock`` exits 4 and writes nothing).

    python benchmarks/lock_unseen.py --models lenet:0 lenet:1 vgg:0 --out docs/benchmarks/lock_unseen.jsonl
    python benchmarks/lock_unseen.py --table docs/benchmarks/lock_unseen.jsonl

Models are the ones ``lock_speed.py`` trains and caches (LeNet-5 on Fashion-MNIST; the
VGG-style net on Fashion-MNIST padded to 3x32x32); ``name:seed`` picks one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, fashion_mnist, log, read_jsonl  # noqa: E402
from lock_speed import SETUPS, checkpoint_path, prepare  # noqa: E402

from advparams import accuracy, load_checkpoint  # noqa: E402
from advparams.devices import resolve_device  # noqa: E402
from advparams.schemes import SCHEMES  # noqa: E402

CASES = {
    # label: (scheme, options, lock-sample counts it runs at)
    "advparams (margin rule, no check)": (
        "advparams",
        {"holdout_rule": "margin", "check_samples": 0},
        (256, 512, 1000),
    ),
    "advparams (bound rule + check, one try)": ("advparams", {"check_tries": 1}, (256, 512, 1000)),
    "advparams (default: bound rule + check, two tries)": ("advparams", {}, (256, 512, 1000)),
    "hardened (default: bound rule + check)": ("hardened", {}, (1000,)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["lenet:0", "lenet:1", "vgg:0"], metavar="NAME:SEED")
    parser.add_argument("--draws", type=int, default=20, help="draws of lock samples per model and count")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--counts", nargs="+", type=int, help="only these lock-sample counts (default: each case's)")
    parser.add_argument("--cache", default="runs/bench")
    parser.add_argument("--out", help="JSON-lines file to append results to")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--table", metavar="ROWS", help="only print the table of a JSON-lines file of rows")
    args = parser.parse_args()
    if args.table:
        print_table(read_jsonl(args.table))
        return
    device = resolve_device(args.device)
    rows = []
    for spec in args.models:
        name, seed = spec.split(":")
        _, _, channels, size, _, _, _ = SETUPS[name]
        train, test = fashion_mnist("train", size, channels), fashion_mnist("test", size, channels)
        prepare(name, int(seed), Path(args.cache), device)
        model = load_checkpoint(checkpoint_path(name, int(seed), Path(args.cache)), device=device).model
        for label in args.cases:
            scheme, options, counts = CASES[label]
            for n in (c for c in counts if not args.counts or c in args.counts):
                for draw in range(args.draws):
                    log(f"{spec} {label} n={n} draw {draw} ...")
                    res = SCHEMES.build(scheme, {**options, "num_samples": n, "seed": 1000 + draw}).lock(model, train)
                    rep = res.report
                    row = {
                        "benchmark": "lock_unseen",
                        "model": spec,
                        "case": label,
                        "num_samples": n,
                        "draw": draw,
                        "accuracy_locked": accuracy(res.model, test),
                        "target_accuracy": rep.target_accuracy,
                        "target_met": rep.target_met,
                        "certified": rep.certified,
                        "check_accuracy": rep.check_accuracy,
                        "check_bound": rep.check_bound,
                        "check_tries": rep.check_tries,
                        "holdout_accuracy_after": rep.holdout_accuracy_after,
                        "lock_accuracy_after": rep.lock_accuracy_after,
                        "params_changed": rep.params_changed,
                        "stopped": rep.stopped,
                        "lock_seconds": rep.seconds,
                        "env": environment(device),
                    }
                    rows.append(row)
                    append_jsonl(args.out, [row])
                    torch.cuda.empty_cache() if device.type == "cuda" else None
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    """The Markdown table of docs/advparams.md ("The target on unseen data")."""
    print("| model | case | lock samples | draws | exit 0 | misses (exit 0, test > target) | exit 4 | "
          "worst test accuracy of exit 0 (%) | values changed (median, max) | searched twice |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    keys = sorted({(r["model"], r["case"], r["num_samples"]) for r in rows},
                  key=lambda k: (k[0], list(CASES).index(k[1]) if k[1] in CASES else 99, k[2]))  # fmt: skip
    for model, case, n in keys:
        rs = [r for r in rows if (r["model"], r["case"], r["num_samples"]) == (model, case, n)]
        met = [r for r in rs if r["target_met"]]
        misses = sum(r["accuracy_locked"] > r["target_accuracy"] for r in met)
        worst = f"{100 * max(r['accuracy_locked'] for r in met):.2f}" if met else "–"
        changed = [r["params_changed"] for r in rs]
        twice = sum(r["check_tries"] > 1 for r in rs) if all("check_tries" in r for r in rs) else "–"
        print(
            f"| {model} | {case} | {n} | {len(rs)} | {len(met)} | {misses} | {len(rs) - len(met)} | {worst} | "
            f"{statistics.median(changed):g}, {max(changed)} | {twice} |"
        )


if __name__ == "__main__":
    main()
