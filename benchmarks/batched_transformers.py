"""Benchmark: values changed by the AdvParams searches on a small transformer, the BERT of
``tests/unit/models/test_huggingface.py`` (2 layers, hidden size 32, trained on a synthetic
4-class token task: ``advparams.testing.huggingface.token_bert``).

Per seed (of the model and of the lock-sample draw) and search variant: values changed,
whether the target was met and certified on unseen check samples, locked accuracy on 512
unseen token sequences, rounds and passes. Variants: the greedy search, the batched search
as it is the default, and the batched search with its experimental options
(``grow_without_drop=false``: a round grows only after a round that lowered the accuracy;
``prune_each=true``: after the prefix bisection, each kept change is undone while the stop
rule holds).

    python benchmarks/batched_transformers.py --seeds 0 1 2 --out docs/benchmarks/batched_transformers.jsonl
    python benchmarks/batched_transformers.py --table docs/benchmarks/batched_transformers.jsonl

Prints a Markdown table; appends one JSON line per seed and variant to --out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, log, read_jsonl  # noqa: E402

from advparams.devices import resolve_device  # noqa: E402
from advparams.metrics import accuracy  # noqa: E402
from advparams.schemes import SCHEMES  # noqa: E402
from advparams.testing import state_equal  # noqa: E402
from advparams.testing.huggingface import token_bert, token_task  # noqa: E402

VARIANTS = {
    "greedy": {"search": "greedy"},
    "batched": {},
    "batched, grow_without_drop=false": {"grow_without_drop": False},
    "batched, grow_without_drop=false, prune_each=true": {"grow_without_drop": False, "prune_each": True},
}
BASE = {"num_samples": 256, "max_params": 1000}
"""The test's lock samples (256) and a budget that no variant reaches."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", help="JSON-lines file to append results to")
    parser.add_argument("--table", metavar="ROWS", help="only print the table of a JSON-lines file of rows")
    args = parser.parse_args()
    if args.table:
        print_table(read_jsonl(args.table))
        return
    device = resolve_device("cpu")
    rows = []
    for seed in args.seeds:
        model = token_bert(seed)
        test = token_task(512, seed=seed + 3)
        clean = accuracy(model, test)
        for variant, options in VARIANTS.items():
            config = {**BASE, **options, "seed": seed}
            start = time.perf_counter()
            result = SCHEMES.build("advparams", config).lock(model, token_task(1024, seed=seed + 4))
            rep = result.report
            row = {
                "benchmark": "batched_transformers",
                "model": "bert-token-task",
                "seed": seed,
                "variant": variant,
                "config": config,
                "accuracy_clean": clean,
                "accuracy_locked": accuracy(result.model, test),
                "params_changed": rep.params_changed,
                "params_total": rep.params_total,
                "target_met": rep.target_met,
                "certified": rep.certified,
                "stopped": rep.stopped,
                "rounds": rep.rounds,
                "forward_passes": rep.forward_passes,
                "backward_passes": rep.backward_passes,
                "unlock_exact": state_equal(SCHEMES.get("advparams")().unlock(result.model, result.key), model),
                "lock_seconds": time.perf_counter() - start,
                "env": environment(device),
            }
            rows.append(row)
            append_jsonl(args.out, [row])
            log(f"seed {seed} {variant}: {rep.params_changed} values, target met {rep.target_met}")
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    """One line per variant: values changed per seed, targets met, locked accuracy."""
    print("| search | values changed (per seed) | mean | target met | locked test acc % (worst) |")
    print("|---|---|---|---|---|")
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        if not mine:
            continue
        values = [r["params_changed"] for r in mine]
        met = sum(bool(r["target_met"]) for r in mine)
        worst = max(r["accuracy_locked"] for r in mine)
        print(f"| {variant} | {' / '.join(map(str, values))} | {statistics.mean(values):.1f} | {met} of {len(mine)} | "
              f"{100 * worst:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
