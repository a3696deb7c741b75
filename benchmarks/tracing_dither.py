"""Benchmark (docs/tracing.md, "Why the lock dithers"): the adaptive single-copy attacker
against users' copies of a hardened lock without and with dither, on Fashion-MNIST LeNet-5
models (``lock_speed.py``'s cache). Without dither the locked tensors hold the original's
values, moved, so the attacker finds every mark by comparing his copy with the locked model
and puts the original values back; with dither he finds nothing.

    python benchmarks/tracing_dither.py --seeds 0 1 2 --out docs/benchmarks/tracing_dither.jsonl

Prints a Markdown table; appends one JSON line per seed and dither to --out. ``--table ROWS``
prints only the table of a JSON-lines file of rows (docs/tracing.md's generated block):

    python benchmarks/tracing_dither.py --table docs/benchmarks/tracing_dither.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, fashion_mnist, log, read_jsonl  # noqa: E402
from lock_speed import checkpoint_path, prepare  # noqa: E402

from advparams.checkpoint import load_checkpoint  # noqa: E402
from advparams.devices import resolve_device  # noqa: E402
from advparams.fingerprint import state_equal  # noqa: E402
from advparams.schemes.hardened import Hardened  # noqa: E402
from advparams.tracing import MarkConfig, mark_copy, mark_plan, trace_weights  # noqa: E402
from advparams.tracing.attacks import unmark_by_values  # noqa: E402
from advparams.tracing.keys import code_secret  # noqa: E402

USERS = [f"user{i:03d}" for i in range(100)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cache", default="runs/bench")
    parser.add_argument("--out")
    parser.add_argument("--table", metavar="ROWS", help="only print the table of a JSON-lines file of rows")
    args = parser.parse_args()
    if args.table:
        print_table(read_jsonl(args.table))
        return
    device = resolve_device("cpu")
    train = fashion_mnist("train", 28, 1)
    mark = MarkConfig()
    rows = []
    for seed in args.seeds:
        prepare("lenet", seed, Path(args.cache), device)
        model = load_checkpoint(checkpoint_path("lenet", seed, Path(args.cache))).model
        for dither in (0, 23):
            locked = Hardened(draws=1, seed=seed, dither=dither).lock(model, train)
            # The plan as user_plan draws it (user_plan itself refuses an undithered lock).
            within = {s.name: s.positions(locked.key.secret) for s in locked.key.shuffles}
            plan = mark_plan(model, code_secret(locked.key), mark, within=within)
            copy_ = mark_copy(model, plan, USERS[0])
            before = trace_weights(copy_, model, plan, USERS, mark.false_accusation)
            u = unmark_by_values(copy_, locked.model, mark.strength)
            after = trace_weights(u.model, model, plan, USERS, mark.false_accusation)
            row = {
                "benchmark": "tracing_dither",
                "seed": seed,
                "dither": dither,
                "positions": mark.positions,
                "found": u.found,
                "changed": u.changed,
                "tensors_skipped": u.skipped,
                "original_restored": state_equal(u.model, model),
                "values_off_original": sum(
                    int((a != b).sum())
                    for a, b in zip(u.model.state_dict().values(), model.state_dict().values(), strict=True)
                ),
                "accused_before": list(before.accused),
                "accused_after": list(after.accused),
                "top_score_after": max(after.scores),
                "threshold_after": after.threshold,
                "env": environment(device),
            }
            rows.append(row)
            append_jsonl(args.out, [row])
            log(f"seed {seed} dither {dither}: found {u.found}, changed {u.changed}, after: {after.accused}")
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    """The Markdown table of docs/tracing.md ("Why the lock dithers")."""
    print("| seed | dither | marked values found | values put back | values still off the original "
          "| named before | named after |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['dither']} | {r['found']} of {r['positions']} | {r['changed']} | "
              f"{r['values_off_original']} | {', '.join(r['accused_before']) or 'nobody'} | "
              f"{', '.join(r['accused_after']) or 'nobody'} |")  # fmt: skip


if __name__ == "__main__":
    main()
