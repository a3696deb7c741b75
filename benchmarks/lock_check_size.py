"""Benchmark: how many check samples does a lock need to certify its target?

For one model, each number of lock samples and ``--draws`` draws of lock samples, lock
with AdvParams under each held-out rule and count the locked model's right answers on
4,000 training images apart from the lock samples (nested check sets: the first 500,
1,000, 2,000 and 4,000 of them), and its test accuracy. ``--table`` then says, for each
check size, how many locks its one-sided Clopper-Pearson bound at 95 % certifies (the
``check_samples`` default is chosen from it) and how many of those miss on the test split.

    python benchmarks/lock_check_size.py --model lenet:0 --out docs/benchmarks/lock_check_size.jsonl
    python benchmarks/lock_check_size.py --table docs/benchmarks/lock_check_size.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, fashion_mnist, log, read_jsonl  # noqa: E402
from lock_speed import SETUPS, checkpoint_path, prepare  # noqa: E402

from advparams import accuracy, load_checkpoint  # noqa: E402
from advparams.data.base import balanced_indices  # noqa: E402
from advparams.devices import resolve_device  # noqa: E402
from advparams.metrics import predict  # noqa: E402
from advparams.metrics.binomial import binomial_upper_bound  # noqa: E402
from advparams.schemes import AdvParams, AdvParamsConfig  # noqa: E402

SIZES = (500, 1000, 2000, 4000)
RULES = ("margin", "bound")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lenet:0", metavar="NAME:SEED")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--cache", default="runs/bench")
    parser.add_argument("--out", help="JSON-lines file to append results to")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--table", metavar="ROWS", help="only print the table of a JSON-lines file of rows")
    args = parser.parse_args()
    if args.table:
        print_table(read_jsonl(args.table))
        return
    device = resolve_device(args.device)
    name, seed = args.model.split(":")
    _, _, channels, size, _, _, _ = SETUPS[name]
    train, test = fashion_mnist("train", size, channels), fashion_mnist("test", size, channels)
    prepare(name, int(seed), Path(args.cache), device)
    model = load_checkpoint(checkpoint_path(name, int(seed), Path(args.cache)), device=device).model
    for n in (256, 512, 1000):
        for draw in range(args.draws):
            # the lock samples of this draw (drawn as the lock draws them), and 4,000 others
            lock_idx = balanced_indices(train.labels, n, torch.Generator().manual_seed(1000 + draw))
            free = torch.ones(len(train), dtype=torch.bool)
            free[lock_idx] = False
            rest = torch.nonzero(free).squeeze(1)
            others = rest[balanced_indices(train.labels[rest], max(SIZES), torch.Generator().manual_seed(77 + draw))]
            for rule in RULES:
                log(f"{args.model} n={n} draw {draw} rule {rule} ...")
                cfg = AdvParamsConfig(num_samples=n, seed=1000 + draw, holdout_rule=rule, check_samples=0)
                res = AdvParams(cfg).lock(model, train)
                right = (predict(res.model, train.subset(others)) == train.labels[others]).float()
                row = {
                    "benchmark": "lock_check_size",
                    "model": args.model,
                    "num_samples": n,
                    "draw": draw,
                    "holdout_rule": rule,
                    "accuracy_locked": accuracy(res.model, test),
                    "target_accuracy": res.report.target_accuracy,
                    "params_changed": res.report.params_changed,
                    "stopped": res.report.stopped,
                    "right_of_first": {str(m): int(right[:m].sum()) for m in SIZES},
                    "env": environment(device),
                }
                append_jsonl(args.out, [row])


def print_table(rows: list[dict]) -> None:
    """Locks certified by a check set of each size (95 %), and how many of them miss."""
    print("| model | held-out rule | lock samples | draws | " + " | ".join(f"certified by {m:,}" for m in SIZES)
          + " | misses among the certified (any size) |")  # fmt: skip
    print("|---|---|---|---|" + "---|" * len(SIZES) + "---|")
    for key in sorted({(r["model"], r["holdout_rule"], r["num_samples"]) for r in rows}):
        rs = [r for r in rows if (r["model"], r["holdout_rule"], r["num_samples"]) == key]
        cells, misses = [], 0
        for m in SIZES:
            ok = [binomial_upper_bound(r["right_of_first"][str(m)], m, 0.95) <= r["target_accuracy"] for r in rs]
            cells.append(str(sum(ok)))
            misses = max(
                misses, sum(c and r["accuracy_locked"] > r["target_accuracy"] for c, r in zip(ok, rs, strict=True))
            )
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(rs)} | " + " | ".join(cells) + f" | {misses} |")


if __name__ == "__main__":
    main()
