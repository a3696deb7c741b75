"""CPU numerics and thread count (docs/evaluation.md, "Same numbers, whatever runs them").

Trains LeNet-5 for one epoch on the first 20,000 Fashion-MNIST training images from the
same seed with 1 and with 2 torch threads, with oneDNN's convolutions (torch's default)
and inside :func:`advparams.devices.reproducible_numerics` (the engine's setting), each
in a fresh process (MKL's mode is fixed at its first call), and prints one JSON line per
case: the weights' fingerprint and the seconds.

    .venv/bin/python benchmarks/numerics.py --out docs/benchmarks/numerics.jsonl
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from advparams.files import atomic_write_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import read_jsonl  # noqa: E402

CHILD = r"""
import json, sys, time, dataclasses, contextlib
import torch
from advparams.devices import reproducible_numerics, strict_mkl
strict_mkl()  # before MKL's first call
from advparams.data import load_dataset
from advparams.fingerprint import model_fingerprint
from advparams.training import TrainConfig, train_from_seed
threads, mode = int(sys.argv[1]), sys.argv[2]
torch.set_num_threads(threads)
data = load_dataset("fashion-mnist", "train").subset(torch.arange(20000))
cfg = TrainConfig(epochs=1, batch_size=128, lr=0.001, optimizer="adam")
block = reproducible_numerics() if mode == "reproducible" else contextlib.nullcontext()
with block:
    start = time.perf_counter()
    result = train_from_seed("lenet", {}, data, cfg, seed=0, device=torch.device("cpu"))
    seconds = time.perf_counter() - start
print(json.dumps({"threads": threads, "numerics": mode, "fingerprint": model_fingerprint(result.model),
                  "seconds": round(seconds, 2)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="JSON-lines file to write")
    parser.add_argument("--force", action="store_true", help="replace --out if this script wrote it")
    parser.add_argument("--table", metavar="ROWS", help="only print the table of a JSON-lines file of rows")
    args = parser.parse_args()
    if args.table:
        print_table(read_jsonl(args.table))
        return
    rows = []
    for mode in ("onednn", "reproducible"):
        for threads in (1, 2):
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(threads), mode], capture_output=True, text=True, check=True
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    for mode in ("onednn", "reproducible"):
        same = len({r["fingerprint"] for r in rows if r["numerics"] == mode}) == 1
        print(f"{mode}: 1 and 2 threads give {'the same' if same else 'different'} weights")
    if args.out:
        text = "".join(json.dumps(r) + "\n" for r in rows).encode()
        atomic_write_bytes(Path(args.out), text, force=args.force)


def print_table(rows: list[dict]) -> None:
    """Seconds per case, and whether 1 and 2 threads gave the same weights."""
    names = {"onednn": "oneDNN (torch's default)", "reproducible": "`reproducible_numerics()` (the engine)"}
    print("| numerics | 1 thread | 2 threads | 1 and 2 threads give |")
    print("|---|---|---|---|")
    for mode in dict.fromkeys(r["numerics"] for r in rows):
        by = {r["threads"]: r for r in rows if r["numerics"] == mode}
        same = len({r["fingerprint"] for r in by.values()}) == 1
        what = "the same weights, to the bit" if same else "different weights"
        print(f"| {names.get(mode, mode)} | {by[1]['seconds']:.2f} s | {by[2]['seconds']:.2f} s | {what} |")


if __name__ == "__main__":
    main()
