"""Watermarks (docs/watermarks.md): can a leaked model be traced to the user whose copy it was?

Each of ``--users`` users gets a copy of the same trained model watermarked with their own
key (the watermark's seed is the user's number). For each scheme, every copy is queried
with every user's key: a scheme traces leaked models when a copy answers its own user's
key and not the others'. The additional-class scheme is measured as it would have to be
used for this (one copy per user, carriers drawn per user); the noise watermark with a
per-user pattern and target is the comparison.

    .venv/bin/python benchmarks/watermark_tracing.py runs/eval/watermarks/models/seed0 \\
        --out docs/benchmarks/watermark_tracing.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from advparams import load_checkpoint, load_dataset
from advparams.files import atomic_write_bytes
from advparams.metrics import accuracy
from advparams.watermarks import WATERMARKS, trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="trained Fashion-MNIST checkpoint (the owner's model)")
    parser.add_argument("--schemes", nargs="+", default=["additional-class", "zhang-noise", "zhang-content"])
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--out", required=True, help="JSON-lines file to write (one row per scheme)")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    model = load_checkpoint(args.checkpoint).model
    rows = []
    for name in args.schemes:
        start = time.perf_counter()
        copies = {f"user-{u}": WATERMARKS.build(name, {"seed": 100 + u}).embed(model, train) for u in range(args.users)}
        keys = {u: c.key for u, c in copies.items()}
        matrix = {}
        traced = 0
        for user, c in copies.items():
            best, scores = trace(c.model, keys)
            matrix[user] = scores
            traced += best == user and all(s < 0.5 for u, s in scores.items() if u != user)
        row = {
            "scheme": name,
            "users": args.users,
            "scores": matrix,  # copy of user -> that copy's score on each user's key
            "traced_cleanly": traced,
            "copy_accuracy": [accuracy(c.model, test) for c in copies.values()],
            "seconds": time.perf_counter() - start,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    atomic_write_bytes(Path(args.out), text.encode(), force=args.force)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
