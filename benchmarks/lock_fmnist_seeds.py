"""Benchmark: the AdvParams claims on real Fashion-MNIST with LeNet-5, over seeds.

For each seed: train LeNet-5 (10 epochs, Adam 1e-3, batch 128; cached under --cache),
lock it with the default AdvParams settings and the same seed, and measure test accuracy
before / locked / unlocked, the number of changed parameters and the lock time.

    python benchmarks/lock_fmnist_seeds.py --seeds 0 1 2 --out docs/benchmarks/lock_fmnist_seeds.jsonl
    python benchmarks/lock_fmnist_seeds.py --table docs/benchmarks/lock_fmnist_seeds.jsonl
    python benchmarks/lock_fmnist_seeds.py --ablation docs/benchmarks/lock_fmnist_ablation_batched.jsonl

Prints a Markdown table with mean and worst case; appends one JSON line per seed. Rows
without a ``search`` field were written before the option existed: their search is "not recorded".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, fashion_mnist, log  # noqa: E402

from advparams import AdvParams, AdvParamsConfig, accuracy, load_checkpoint, save_checkpoint, unlock  # noqa: E402
from advparams.devices import resolve_device  # noqa: E402
from advparams.testing import state_equal  # noqa: E402
from advparams.training import TrainConfig, train_from_seed  # noqa: E402


def trained_lenet(seed: int, cache: Path, device: torch.device) -> torch.nn.Module:
    path = cache / f"lenet-fashion-mnist-seed{seed}"
    if not (path / "model.json").exists():
        log(f"training LeNet-5 seed {seed} ...")
        args = {"num_classes": 10, "in_channels": 1, "input_size": 28}
        result = train_from_seed(
            "lenet", args, fashion_mnist("train"), TrainConfig(epochs=10), seed=seed, device=device
        )
        cache.mkdir(parents=True, exist_ok=True)
        save_checkpoint(
            result.model,
            path,
            architecture="lenet",
            arguments=args,
            dataset="fashion-mnist",
            record={"seed": seed, "train": dataclasses.asdict(TrainConfig(epochs=10))},
        )
    return load_checkpoint(path, device=device).model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cache", default="runs/bench")
    parser.add_argument("--out", help="JSON-lines file to append results to")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--selection", default="gain", choices=("gain", "gradient"))
    parser.add_argument("--objective", default="capped-ce", choices=("capped-ce", "ce"))
    parser.add_argument("--search", default="batched", choices=("batched", "greedy"))
    parser.add_argument("--table", metavar="ROWS", help="only print the seeds table of a JSON-lines file of rows")
    parser.add_argument(
        "--ablation", metavar="ROWS", help="only print one line per variant (search, selection, objective) of ROWS"
    )
    args = parser.parse_args()
    if args.table or args.ablation:
        rows = [json.loads(line) for line in Path(args.table or args.ablation).read_text().splitlines() if line.strip()]
        (print_table if args.table else print_ablation)(rows)
        return
    device = resolve_device(args.device)
    train_data, test_data = fashion_mnist("train"), fashion_mnist("test")
    rows = []
    for seed in args.seeds:
        model = trained_lenet(seed, Path(args.cache), device)
        start = time.perf_counter()
        config = AdvParamsConfig(seed=seed, selection=args.selection, objective=args.objective, search=args.search)
        result = AdvParams(config).lock(model, train_data)
        wall = time.perf_counter() - start
        restored = unlock(result.model, result.key)
        row = {
            "benchmark": "lock_fmnist_seeds",
            "model": "lenet",
            "seed": seed,
            "selection": args.selection,
            "objective": args.objective,
            "search": args.search,
            "accuracy_clean": accuracy(model, test_data),
            "accuracy_locked": accuracy(result.model, test_data),
            "accuracy_unlocked": accuracy(restored, test_data),
            "unlock_exact": state_equal(restored, model),
            "params_changed": result.report.params_changed,
            "params_total": result.report.params_total,
            "proportion_percent": result.report.proportion_percent,
            "lock_seconds": wall,
            "lock_accuracy_after": result.report.lock_accuracy_after,
            "stopped": result.report.stopped,
            "changed_per_tensor": result.report.changed_per_tensor,
            "env": environment(device),
        }
        rows.append(row)
        append_jsonl(args.out, [row])
        log(f"seed {seed}: {row['params_changed']} changed, locked {row['accuracy_locked']:.4f}")
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    """One line per seed, then the mean and the worst case."""
    print("| seed | clean acc % | locked acc % | unlocked acc % | bit-exact | params changed | share % | lock s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seed']} | {100 * r['accuracy_clean']:.2f} | {100 * r['accuracy_locked']:.2f} | "
            f"{100 * r['accuracy_unlocked']:.2f} | {r['unlock_exact']} | {r['params_changed']} | "
            f"{r['proportion_percent']:.4f} | {r['lock_seconds']:.2f} |"
        )
    col = {
        k: [r[k] for r in rows]
        for k in ("accuracy_clean", "accuracy_locked", "accuracy_unlocked", "params_changed", "lock_seconds")
    }
    mean = {k: statistics.mean(v) for k, v in col.items()}
    print(
        f"| mean | {100 * mean['accuracy_clean']:.2f} | {100 * mean['accuracy_locked']:.2f} | "
        f"{100 * mean['accuracy_unlocked']:.2f} | | {mean['params_changed']:.1f} | | {mean['lock_seconds']:.2f} |"
    )
    print(
        f"| worst | {100 * min(col['accuracy_clean']):.2f} | {100 * max(col['accuracy_locked']):.2f} | | "
        f"{all(r['unlock_exact'] for r in rows)} | {max(col['params_changed'])} | | {max(col['lock_seconds']):.2f} |"
    )


def variant(r: dict) -> str:
    return f"{r.get('search', 'not recorded')}, {r['selection']}, {r['objective']}"


def print_ablation(rows: list[dict]) -> None:
    """One line per variant: locked accuracy and values changed (mean / worst), lock seconds,
    and the seeds whose search ran to its budget instead of stopping at the target."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(variant(r), []).append(r)
    print(
        "| search, selection, objective | seeds | locked acc % (mean / worst) | changed (mean / worst) | "
        "stopped at the budget | lock s (mean) |"
    )
    print("|---|---|---|---|---|---|")
    for name, rs in groups.items():
        acc = [100 * r["accuracy_locked"] for r in rs]
        changed = [r["params_changed"] for r in rs]
        seeds = ", ".join(str(r["seed"]) for r in rs)
        budget = [str(r["seed"]) for r in rs if r["stopped"] == "budget"]
        stops = f"seed {', '.join(budget)}" if budget else "none"
        print(
            f"| {name} | {seeds} | {statistics.mean(acc):.2f} / {max(acc):.2f} | "
            f"{statistics.mean(changed):.1f} / {max(changed)} | {stops} | "
            f"{statistics.mean(r['lock_seconds'] for r in rs):.2f} |"
        )


if __name__ == "__main__":
    main()
