"""Exploration for the hardened lock (docs/hardened.md): two designs that were tried and dropped, measured on one model.

* ``dense-flip``: a seeded (key = seed) random sign flip of a share of every weight
  tensor's larger-magnitude half; the candidate set is computable from the locked model
  (flips keep magnitudes), so the key could be one seed however many weights change.
* ``permute``: the values at the top-|gradient| positions of each tensor are permuted
  among themselves, the largest value to the position of largest gradient (the
  rearrangement that raises the loss most to first order); the value distribution is
  exactly unchanged.

For each: test accuracy of the locked model, the KS p-values per tensor, and fine-tuning
with 1% and 5% of the data (20 epochs) against training from scratch on the same samples.

    .venv/bin/python benchmarks/explore_hardened.py --checkpoint runs/eval/fashion-mnist/models/seed0 \\
        --out docs/benchmarks/explore_hardened.jsonl
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment  # noqa: E402

from advparams.attacks import FineTune, FineTuneConfig  # noqa: E402
from advparams.checkpoint import load_checkpoint  # noqa: E402
from advparams.data import load_dataset  # noqa: E402
from advparams.metrics import accuracy, ks_2samp  # noqa: E402
from advparams.schemes.lock_samples import LockBatches  # noqa: E402
from advparams.schemes.locking import candidate_parameters, float_work_copy  # noqa: E402


def dense_flip(model: nn.Module, share: float, seed: int) -> nn.Module:
    """Flips the sign of ``share`` of each weight tensor, drawn from its larger-|w| half."""
    out = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            if p.dim() < 2:
                continue
            flat = p.view(-1)
            pool = torch.nonzero(flat.abs() >= flat.abs().median()).reshape(-1)
            idx = pool[torch.randperm(pool.numel(), generator=g)[: round(share * flat.numel())]]
            flat[idx] = -flat[idx]
    return out


def permute_top_gradient(model: nn.Module, data: object, count: int, seed: int) -> nn.Module:
    """Permutes the values at the ``count`` top-|g| positions (spread by tensor size)."""
    work = float_work_copy(model)
    cands = candidate_parameters(work)
    batches = LockBatches(data, 1000, 1000, torch.Generator().manual_seed(seed), torch.device("cpu"))  # type: ignore[arg-type]
    grads = batches.gradients(work, cands, "capped-ce", 4.6)
    total = sum(p.numel() for p in cands.values())
    with torch.no_grad():
        for name, p in cands.items():
            k = max(2, round(count * p.numel() / total))
            g = grads[name].reshape(-1)
            idx = g.abs().topk(min(k, g.numel())).indices
            values = p.view(-1)[idx].clone()
            new = torch.empty_like(values)
            new[torch.argsort(g[idx])] = torch.sort(values).values
            p.view(-1)[idx] = new
    return work


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a trained LeNet-5 checkpoint folder")
    ap.add_argument("--out", required=True, help="JSON-lines file to append to")
    ap.add_argument("--shares", type=float, nargs="*", default=[0.02, 0.05, 0.1])
    ap.add_argument("--permute", type=int, nargs="*", default=[300, 600])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05])
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    model = load_checkpoint(args.checkpoint).model
    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    env = environment(torch.device("cpu"))
    designs = [("dense-flip", s, lambda s=s: dense_flip(model, s, 0)) for s in args.shares]
    designs += [("permute", c, lambda c=c: permute_top_gradient(model, train, c, 0)) for c in args.permute]
    for name, size, make in designs:
        start = time.perf_counter()
        locked = make()
        seconds = time.perf_counter() - start
        ks = {
            n: ks_2samp(a.detach(), b.detach())[1]
            for (n, a), b in zip(model.named_parameters(), locked.parameters(), strict=True)
            if a.dim() >= 2
        }
        changed = sum(int((a != b).sum()) for a, b in zip(model.parameters(), locked.parameters(), strict=True))
        row = {
            "benchmark": "explore_hardened",
            "design": name,
            "size": size,
            "changed": changed,
            "clean_accuracy": accuracy(model, test),
            "locked_accuracy": accuracy(locked, test),
            "ks_p_values": ks,
            "lock_seconds": seconds,
            "finetune": [],
            "environment": env,
        }
        for frac in args.fractions:
            res = FineTune(FineTuneConfig(data_fraction=frac, epochs=args.epochs, seed=0)).run(locked, train)
            tuned, scratch = accuracy(res.model, test), accuracy(res.baselines["scratch"], test)
            row["finetune"].append(
                {
                    "data_fraction": frac,
                    "epochs": args.epochs,
                    "tuned": tuned,
                    "scratch": scratch,
                    "advantage": tuned - scratch,
                }
            )
        append_jsonl(args.out, [row])
        print(name, size, changed, f"locked {row['locked_accuracy']:.4f}", row["finetune"], flush=True)


if __name__ == "__main__":
    main()
