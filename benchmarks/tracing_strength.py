"""Benchmark (docs/tracing.md, "Designs tried for the copies' accuracy"): every user's
copy of a traced model at several mark strengths, plain (``+-a_j`` by the codeword's bit,
the library's marks) or *centred* (``a_j (s_j - (2 p_j - 1))``: the marks less their
expected value, so that no shift is common to every user; not in the library), and their
test accuracy against the original's.

It reads a model that the tracing study locked (``runs/eval/<run>/tracing/<model>-seed<N>``
holds ``locked`` and ``owner.key``):

    python benchmarks/tracing_strength.py runs/eval/tracing-fashion-mnist/tracing/lenet-seed2 \\
        --strengths 0.05 0.03 --centred --out docs/benchmarks/tracing_strength.jsonl

Prints a Markdown table; appends one JSON line per strength and kind of mark to --out.
``--table ROWS`` prints only the table of a JSON-lines file of rows (docs/tracing.md's
generated block):

    python benchmarks/tracing_strength.py --table docs/benchmarks/tracing_strength.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, fashion_mnist, log  # noqa: E402

from advparams.checkpoint import load_checkpoint  # noqa: E402
from advparams.keys import load_key, unlock  # noqa: E402
from advparams.tracing import MarkConfig, MarkWriter, user_plan  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", help="a tracing study's model folder (locked, owner.key)")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.05, 0.03])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--centred", action="store_true", help="also measure centred marks")
    parser.add_argument("--out")
    parser.add_argument("--table", metavar="ROWS", help="only print the table of a JSON-lines file of rows")
    args = parser.parse_args()
    if args.table:
        print(HEADER)
        for row in [json.loads(line) for line in Path(args.table).read_text().splitlines() if line.strip()]:
            print(table_line(row))
        return
    if args.folder is None:
        parser.error("the folder is required (or --table ROWS)")
    folder = Path(args.folder)
    key = load_key(folder / "owner.key")
    original = unlock(load_checkpoint(folder / "locked").model, key).eval()
    x, y = fashion_mnist("test").tensors()
    with torch.no_grad():
        reference = original(x).argmax(1)
    base = float((reference == y).double().mean())
    users = [f"user{i:03d}" for i in range(args.users)]
    print(HEADER)
    for strength in args.strengths:
        plan = user_plan(key, original, MarkConfig(strength=strength))
        centre = 2.0 * plan.code.biases() - 1.0
        writer = MarkWriter(original, plan)
        for centred in (False, True) if args.centred else (False,):
            start = time.perf_counter()
            diffs, agree = [], []
            for user in users:
                signs = plan.code.codeword(user).double() * 2.0 - 1.0
                copy_ = writer.write_signs(signs - centre if centred else signs)
                with torch.no_grad():
                    answers = copy_(x).argmax(1)
                diffs.append((float((answers == y).double().mean()) - base) * 100.0)
                agree.append(float((answers == reference).double().mean()) * 100.0)
            d = torch.tensor(diffs)
            within = int((d.abs() <= 0.2 + 1e-9).sum())
            kind = "centred" if centred else "plain"
            log(f"strength {strength} {kind}: {time.perf_counter() - start:.0f} s")
            row = {
                "benchmark": "tracing_strength",
                "folder": folder.name,
                "strength": strength,
                "marks": kind,
                "users": len(users),
                "original_accuracy": base,
                "diff_points": diffs,
                "agreement_pct": agree,
                "within_0.2": within,
                "env": environment(torch.device("cpu")),
            }
            print(table_line(row))
            append_jsonl(args.out, [row])


HEADER = (
    "| strength | marks | copies | copy − original (points) | mean | sd | within 0.2 | agreement % |\n"
    "|---|---|---|---|---|---|---|---|"
)


def table_line(row: dict) -> str:
    """One line of the table of docs/tracing.md ("Designs tried for the copies' accuracy")."""
    d = torch.tensor(row["diff_points"])
    agree = row["agreement_pct"]
    return (
        f"| {row['strength']} | {row['marks']} | {row['users']} | {d.min():+.2f} to {d.max():+.2f} | "
        f"{d.mean():+.3f} | {d.std():.3f} | {row['within_0.2']}/{row['users']} | "
        f"{min(agree):.2f} to {max(agree):.2f} |"
    )


if __name__ == "__main__":
    main()
