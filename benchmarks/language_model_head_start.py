"""The thief's head start on the language model (docs/language-models.md): a thief holds a
locked GPT-2 model and 1 % or 10 % of the ``python-stdlib`` training windows, and
fine-tunes it. Does the locked model give them a better model than they could make
without it?

For each trained model, data fraction and starting point the same recipe runs on the same
windows in the same order (all layers, Adam, batch 32, learning rate 1e-3: the recipe that
trained the model), one epoch at a time until the held-out perplexity has not improved
for ``--patience`` epochs or ``--max-epochs`` are done; the row keeps the best epoch
(the plateau) and its perplexity on the whole test split. Starting points:

* each lock's locked model (the folders ``benchmarks/language_model_locks.py`` wrote);
* ``scratch``: the same architecture freshly initialised (the class's own initialisation);
* ``shuffled-stranger``: an independently trained model of the same architecture (the
  next checkpoint given) with the values of every tensor shuffled: its weight
  distribution without its function, what anyone can make from a public model.

Head start = best perplexity from the baselines minus the perplexity from the locked
model (positive: the locked model helps the thief). The held-out rule reads a fixed
subset of the test windows (``--eval-windows``) [inferred: the thief's stop rule is given
held-out text, for every starting point alike].

    .venv/bin/python benchmarks/language_model_head_start.py runs/lm/gpt2-seed0 runs/lm/gpt2-seed2 \\
        --locks-work runs/lm/locks --out docs/benchmarks/language_model_head_start.jsonl
    .venv/bin/python benchmarks/language_model_head_start.py --table docs/benchmarks/language_model_head_start.jsonl

Rows are appended one per (model, fraction, starting point); a rerun skips the ones
already in ``--out`` (resumes where it stopped).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, log, read_jsonl  # noqa: E402

from advparams.attacks.base import reinitialised  # noqa: E402
from advparams.checkpoint import load_checkpoint  # noqa: E402
from advparams.data import load_dataset  # noqa: E402
from advparams.data.base import iter_batches  # noqa: E402
from advparams.tasks import task_of, task_quality  # noqa: E402

DATASET = "python-stdlib"
RECIPE = {"optimizer": "adam", "lr": 1e-3, "batch_size": 32, "layers": "all"}
"""The thief's recipe: the one that trained the models (docs/language-models.md)."""
BASELINES = ("scratch", "shuffled-stranger")


def shuffled(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy of ``model`` with every parameter's values permuted (tied parameters once)."""
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():  # parameters() yields a tied tensor once
            flat = p.detach().reshape(-1)
            p.copy_(flat[torch.randperm(flat.numel(), generator=gen)].view_as(p))
    return out


def fine_tune(
    model: torch.nn.Module, data: Any, held_out: Any, *, seed: int, max_epochs: int, patience: int
) -> tuple[torch.nn.Module, list[float], float]:
    """``model`` trained by the recipe until the held-out perplexity stops improving: the
    best epoch's copy, the held-out perplexity after each epoch (index 0: before), seconds."""
    net = copy.deepcopy(model).train()
    for p in net.parameters():
        p.requires_grad_(True)
    task = task_of(data)
    opt = torch.optim.Adam(net.parameters(), lr=RECIPE["lr"])
    gen = torch.Generator().manual_seed(seed)  # the same batches for every starting point
    curve = [task_quality(net, held_out, batch_size=256)["perplexity"]]
    best, best_state, since = curve[0], copy.deepcopy(net.state_dict()), 0
    start = time.perf_counter()
    for _ in range(max_epochs):
        net.train()
        for x, y in iter_batches(data, RECIPE["batch_size"], shuffle=True, generator=gen):
            opt.zero_grad(set_to_none=True)
            out, target = task.outputs(net, x, y)
            F.cross_entropy(out, target).backward()
            opt.step()
        curve.append(task_quality(net, held_out, batch_size=256)["perplexity"])
        if curve[-1] < best:
            best, best_state, since = curve[-1], copy.deepcopy(net.state_dict()), 0
        else:
            since += 1
            if since >= patience:
                break
    net.load_state_dict(best_state)
    return net.eval(), curve, time.perf_counter() - start


def starting_points(
    checkpoint: Path, stranger: Path, locks_work: Path, locks: list[str], seed: int
) -> dict[str, torch.nn.Module]:
    from transformers import AutoModelForCausalLM

    clean = load_checkpoint(checkpoint).model
    out: dict[str, torch.nn.Module] = {}
    for label in locks:
        folder = locks_work / f"{checkpoint.name}-{label}"
        if not (folder / "config.json").is_file():
            raise SystemExit(f"{folder} is missing: run benchmarks/language_model_locks.py on {checkpoint} first")
        out[label] = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    out["scratch"] = reinitialised(clean, 1000 + seed)
    out["shuffled-stranger"] = shuffled(load_checkpoint(stranger).model, 2000 + seed)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="*", type=Path, help="gpt2 checkpoints; each one's stranger is the next")
    ap.add_argument("--locks-work", type=Path, default=Path("runs/lm/locks"), help="the locks benchmark's --work")
    ap.add_argument("--locks", nargs="+", default=["advparams"], help="locks (labels of the locks benchmark)")
    ap.add_argument("--cases", nargs="+", default=["0.01:30", "0.1:8"], help="FRACTION:MAX_EPOCHS cases")
    ap.add_argument("--patience", type=int, default=2, help="epochs without a better held-out perplexity")
    ap.add_argument("--eval-windows", type=int, default=512, help="test windows the held-out rule reads")
    ap.add_argument("--only", nargs="+", type=int, help="only these checkpoints (indices), the others as strangers")
    ap.add_argument("--out", help="append the rows to this JSON-lines file (and skip the ones there)")
    ap.add_argument("--table", type=Path, help="print the table of these rows and stop")
    args = ap.parse_args()
    if args.table:
        print(table(read_jsonl(args.table)))
        return
    if len(args.checkpoints) < 2:
        ap.error("give at least two checkpoints (each one's stranger is the next)")
    train, test = load_dataset(DATASET, "train"), load_dataset(DATASET, "test")
    held_out = test.subset(torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[: args.eval_windows])
    old = read_jsonl(args.out) if args.out and Path(args.out).exists() else []
    done = {(r["model"], r["fraction"], r["start"]) for r in old}
    env = environment(torch.device("cpu"))
    for i, checkpoint in enumerate(args.checkpoints):
        if args.only is not None and i not in args.only:
            continue
        stranger = args.checkpoints[(i + 1) % len(args.checkpoints)]
        seed = int(load_checkpoint(checkpoint).meta.get("record", {}).get("seed", i))
        starts = starting_points(checkpoint, stranger, args.locks_work, args.locks, seed)
        for case in args.cases:
            fraction, max_epochs = float(case.split(":")[0]), int(case.split(":")[1])
            n = max(1, round(fraction * len(train)))
            windows = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
            data = train.subset(windows)
            for name, model in starts.items():
                if (checkpoint.name, fraction, name) in done:
                    continue
                before = task_quality(model, test)
                tuned, curve, seconds = fine_tune(
                    model, data, held_out, seed=seed, max_epochs=max_epochs, patience=args.patience
                )
                after = task_quality(tuned, test)
                row = {
                    "bench": "language_model_head_start",
                    "model": checkpoint.name,
                    "seed": seed,
                    "stranger": stranger.name,
                    "fraction": fraction,
                    "windows": n,
                    "start": name,
                    "recipe": RECIPE,
                    "max_epochs": max_epochs,
                    "patience": args.patience,
                    "eval_windows": args.eval_windows,
                    "held_out_curve": curve,
                    "best_epoch": min(range(len(curve)), key=curve.__getitem__),
                    "perplexity_start": before["perplexity"],
                    "perplexity": after["perplexity"],
                    "accuracy": after["accuracy"],
                    "seconds": seconds,
                    "env": env,
                }
                append_jsonl(args.out, [row])
                log(
                    f"{checkpoint.name} {fraction:g} {name}: perplexity {before['perplexity']:.2f} -> "
                    f"{after['perplexity']:.2f} (best epoch {row['best_epoch']} of {len(curve) - 1}, {seconds:.0f} s)"
                )


def table(rows: list[dict[str, Any]]) -> str:
    """Per fraction: test perplexity after fine-tuning from each starting point (mean over
    models), and each lock's head start over the best baseline (per model, then mean)."""
    out = [
        "| data | models | start | test perplexity before | after fine-tuning (plateau) | best epoch "
        "| head start over the best baseline (perplexity) |",
        "|---|---|---|---|---|---|---|",
    ]
    for fraction in sorted({r["fraction"] for r in rows}):
        mine = [r for r in rows if r["fraction"] == fraction]
        models = sorted({r["model"] for r in mine})
        by = {(r["model"], r["start"]): r for r in mine}
        starts = list(dict.fromkeys(r["start"] for r in mine if r["start"] not in BASELINES)) + list(BASELINES)
        for start in starts:
            have = [by[(m, start)] for m in models if (m, start) in by]
            if not have:
                continue
            before, after = _mean(r["perplexity_start"] for r in have), _mean(r["perplexity"] for r in have)
            epochs = " / ".join(f"{r['best_epoch']} of {len(r['held_out_curve']) - 1}" for r in have)
            gain = "—"
            if start not in BASELINES:
                gaps = [
                    min(by[(r["model"], b)]["perplexity"] for b in BASELINES if (r["model"], b) in by) - r["perplexity"]
                    for r in have
                    if any((r["model"], b) in by for b in BASELINES)
                ]
                gain = _mean(gaps, signed=True) if gaps else "—"
            out.append(
                f"| {fraction:.0%} ({have[0]['windows']:,} windows) | {len(have)} | {start} | {before} "
                f"| {after} | {epochs} | {gain} |"
            )
    return "\n".join(out)


def _mean(values: Any, signed: bool = False) -> str:
    v = list(values)
    text = f"{statistics.mean(v):+.2f}" if signed else f"{statistics.mean(v):.2f}"
    return text + (f" ± {statistics.stdev(v):.2f}" if len(v) > 1 else "")


if __name__ == "__main__":
    main()
