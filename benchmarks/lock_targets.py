"""Benchmark: does a lock's target hold on unseen data? Locked *test* accuracy of AdvParams
with 256, 512 and 1,000 lock samples (the batched default and the old greedy search with
its old stop rule), and of the hardened lock, over seeds, on the models that
``lock_speed.py`` trains (LeNet-5 on Fashion-MNIST; the VGG-style net on Fashion-MNIST
padded to 3x32x32). The target is chance + 2 points (12 %).

    python benchmarks/lock_targets.py --out docs/benchmarks/lock_targets.jsonl

Prints a Markdown table; appends one JSON line per lock to --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, fashion_mnist, log, read_jsonl  # noqa: E402
from lock_speed import SETUPS, checkpoint_path, prepare  # noqa: E402

from advparams import accuracy, load_checkpoint, unlock  # noqa: E402
from advparams.devices import resolve_device  # noqa: E402
from advparams.schemes import SCHEMES  # noqa: E402
from advparams.testing import state_equal  # noqa: E402

CASES = [
    # (label, scheme, options, models)
    *[(f"advparams n={n}", "advparams", {"num_samples": n}, ("lenet", "vgg")) for n in (256, 512, 1000)],
    *[
        (f"advparams greedy n={n}", "advparams", {"num_samples": n, "search": "greedy", "holdout": 0.0}, ("lenet",))
        for n in (256, 512, 1000)
    ],
    ("hardened (8 draws)", "hardened", {}, ("lenet", "vgg")),
    ("hardened (1 draw)", "hardened", {"draws": 1, "max_draws": 1}, ("lenet", "vgg")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["lenet", "vgg"], choices=["lenet", "vgg"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cache", default="runs/bench")
    parser.add_argument("--out", help="JSON-lines file to append results to")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cases", nargs="+", metavar="PREFIX", help="only the cases whose label starts so")
    parser.add_argument("--table", metavar="ROWS", help="only print the table of a JSON-lines file of rows")
    args = parser.parse_args()
    if args.table:
        print_table(read_jsonl(args.table))
        return
    device = resolve_device(args.device)
    rows = []
    for name in args.models:
        _, _, channels, size, _, _, _ = SETUPS[name]
        train, test = fashion_mnist("train", size, channels), fashion_mnist("test", size, channels)
        for seed in args.seeds:
            prepare(name, seed, Path(args.cache), device)
            model = load_checkpoint(checkpoint_path(name, seed, Path(args.cache)), device=device).model
            clean = accuracy(model, test)
            for label, scheme, options, models in CASES:
                if name not in models or (args.cases and not any(label.startswith(c) for c in args.cases)):
                    continue
                log(f"{name} seed {seed}: {label} ...")
                res = SCHEMES.build(scheme, {**options, "seed": seed}).lock(model, train)
                rep = res.report
                row = {
                    "benchmark": "lock_targets",
                    "model": name,
                    "seed": seed,
                    "case": label,
                    "scheme": scheme,
                    "options": options,
                    "accuracy_clean": clean,
                    "accuracy_locked": accuracy(res.model, test),
                    "target_accuracy": rep.target_accuracy,
                    "lock_accuracy_after": rep.lock_accuracy_after,
                    "holdout_accuracy_after": rep.holdout_accuracy_after,
                    "relabelled_lock_accuracy": res.key.info.get("relabelled_lock_accuracy"),
                    "params_changed": rep.params_changed,
                    "stopped": rep.stopped,
                    "lock_seconds": rep.seconds,
                    "unlock_exact": state_equal(unlock(res.model, res.key), model),
                    "env": environment(device),
                }
                rows.append(row)
                append_jsonl(args.out, [row])
                torch.cuda.empty_cache() if device.type == "cuda" else None
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    """The Markdown table of docs/advparams.md ("the target on unseen data")."""
    print("| model | case | seed 0 | seed 1 | seed 2 | worst | changed | at most 12 % on every seed |")
    print("|---|---|---|---|---|---|---|---|")
    keys = sorted({(r["model"], r["case"]) for r in rows}, key=lambda k: (k[0], [c[0] for c in CASES].index(k[1])))
    for model, case in keys:
        rs = sorted((r for r in rows if r["model"] == model and r["case"] == case), key=lambda r: r["seed"])
        accs = [100 * r["accuracy_locked"] for r in rs]
        cells = " | ".join(f"{a:.2f}" for a in accs)
        changed = " / ".join(str(r["params_changed"]) for r in rs)
        print(f"| {model} | {case} | {cells} | {max(accs):.2f} | {changed} | {'yes' if max(accs) <= 12 else 'no'} |")


if __name__ == "__main__":
    main()
