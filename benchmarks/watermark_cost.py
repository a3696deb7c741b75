"""Watermarks (docs/watermarks.md): the clean-accuracy cost of a watermark against a matched control.

Embedding fine-tunes the trained model for 2 more epochs, which by itself can move test
accuracy. The control fine-tunes the same model with the same schedule (Adam, lr 5e-4,
batches of 128, 2 epochs) *without* key samples; the watermark's own cost is its
accuracy's difference from the control's, beside the difference from the model before
embedding that the harness reports. Reads the harness's rows and models.

    .venv/bin/python benchmarks/watermark_cost.py runs/eval/watermarks \\
        --out docs/benchmarks/watermark_cost.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from advparams import load_checkpoint, load_dataset
from advparams.evaluation import open_run
from advparams.files import atomic_write_bytes
from advparams.metrics import accuracy
from advparams.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder of a Fashion-MNIST watermark evaluation")
    parser.add_argument("--out", required=True, help="JSON-lines file to write (one row per seed)")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    run = Path(args.run)
    rows = open_run(run).rows()
    train_data, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    out = []
    for clean in sorted((r for r in rows if r.kind == "clean"), key=lambda r: r.seed):
        seed = clean.seed
        path = clean.metrics.get("checkpoint") or run / "models" / f"seed{seed}"
        model = load_checkpoint(path).model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            control = train(
                model, train_data, TrainConfig(epochs=2, lr=5e-4), generator=torch.Generator().manual_seed(seed)
            ).model
        control_acc = accuracy(control, test)
        marks = {r.scheme: r.accuracy for r in rows if r.kind == "watermark" and r.seed == seed}
        row = {
            "seed": seed,
            "clean": clean.accuracy,
            "control": control_acc,
            "watermarked": marks,
            "cost_vs_control_pp": {w: 100 * (control_acc - a) for w, a in marks.items()},
        }
        print(json.dumps(row), flush=True)
        out.append(row)
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in out)
    atomic_write_bytes(Path(args.out), text.encode(), force=args.force)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
