"""Benchmark: the time to read, add to and write a tracing roster, against its size.

A 40,000-user roster took 30 s for every ``keys users list/add``, ``keys issue`` and
``trace`` (a check on load that compared every user with every other); the format allows
100,000 (``advparams.tracing.roster.MAX_USERS``).

    python benchmarks/roster_scale.py --out docs/benchmarks/roster_scale.jsonl
    python benchmarks/roster_scale.py --table docs/benchmarks/roster_scale.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, read_jsonl  # noqa: E402

from advparams.tracing import MarkConfig  # noqa: E402
from advparams.tracing.roster import MAX_USERS, Roster  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 40000, MAX_USERS])
    parser.add_argument("--out", help="JSON-lines file to append results to")
    parser.add_argument("--table", metavar="ROWS", help="only print the table of a JSON-lines file of rows")
    args = parser.parse_args()
    if args.table:
        print_table(read_jsonl(args.table))
        return
    rows = []
    for n in args.sizes:
        users = [f"user{i:06d}" for i in range(n)]
        start = time.perf_counter()
        data = Roster(MarkConfig()).add(*users[:-1]).to_bytes()
        made = time.perf_counter() - start
        start = time.perf_counter()
        roster = Roster.from_bytes(data)
        read = time.perf_counter() - start
        start = time.perf_counter()
        roster.add(users[-1]).to_bytes()
        added = time.perf_counter() - start
        row = {
            "benchmark": "roster_scale",
            "users": n,
            "bytes": len(data),
            "create_seconds": made,
            "read_seconds": read,
            "add_one_seconds": added,
            "env": environment(torch.device("cpu")),
        }
        rows.append(row)
        append_jsonl(args.out, [row])
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    print("| users | file size | create s | read s | add one s |")
    print("|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: r["users"]):
        print(
            f"| {r['users']:,} | {r['bytes'] / 2**20:.2f} MiB | {r['create_seconds']:.2f} | {r['read_seconds']:.2f} "
            f"| {r['add_one_seconds']:.2f} |"
        )


if __name__ == "__main__":
    main()
