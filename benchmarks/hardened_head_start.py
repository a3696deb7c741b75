"""Hardened lock (docs/hardened.md): where the head start an attacker gets from the hardened lock comes from.

A keyed shuffle keeps each tensor's values and destroys their arrangement. If fine-tuning
the shuffled model still beats training from scratch, the head start must come from the
values themselves, i.e. from each layer's weight distribution. That distribution is not
specific to the stolen model: any independently trained network of the same architecture
has about the same one. This script runs the attacks that train (fine-tuning, flip-back,
retrace with re-optimisation), with the harness's options and seeds, on:

* ``own``: the hardened lock of model ``seed`` (what the harness measures);
* ``other``: the hardened lock of an independently trained model (``--other``), which
  holds nothing of model ``seed``;
* ``scratch``: a freshly initialised network (PyTorch's default initialisation), on the
  same samples (the attacks' own ``scratch`` baseline).

If ``own`` and ``other`` are alike, the head start is knowledge of the architecture's
weight distribution, which the thief could have without the stolen model.

    .venv/bin/python benchmarks/hardened_head_start.py --run runs/eval/fashion-mnist \\
        --out docs/benchmarks/hardened_head_start.jsonl

Any run's models: the data set is the run's (its ``config.yaml``), so the transformers of
``docs/transformers.md`` are measured the same way:

    .venv/bin/python benchmarks/hardened_head_start.py --run runs/eval/transformers-vit \\
        --no-search --cases 0.01:40 0.1:20 --out docs/benchmarks/hardened_head_start_vit.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, read_jsonl  # noqa: E402

from advparams.attacks import ATTACKS  # noqa: E402
from advparams.checkpoint import load_checkpoint  # noqa: E402
from advparams.data import load_dataset  # noqa: E402
from advparams.metrics import accuracy  # noqa: E402
from advparams.schemes import Hardened, HardenedConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="a harness run folder with models/seed<S>")
    ap.add_argument("--table", metavar="ROWS", help="only print the table of a JSON-lines file of rows")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="models to attack")
    ap.add_argument(
        "--cases", nargs="+", default=["0.01:40", "0.05:25", "0.1:20"], help="FRACTION:EPOCHS fine-tuning cases"
    )
    ap.add_argument("--no-search", action="store_true", help="fine-tuning only (skip flip-back and retrace)")
    ap.add_argument("--out", help="JSON-lines file to append to")
    args = ap.parse_args()
    if args.table:
        print_table(read_jsonl(args.table))
        return
    if not args.run:
        ap.error("--run is required (or --table ROWS)")
    run = Path(args.run)
    dataset = str(yaml.safe_load((run / "config.yaml").read_text())["dataset"])
    train, test = load_dataset(dataset, "train"), load_dataset(dataset, "test")
    models = {s: load_checkpoint(run / "models" / f"seed{s}").model for s in args.seeds}
    env = environment(torch.device("cpu"))
    for seed in args.seeds:
        other_seed = args.seeds[(args.seeds.index(seed) + 1) % len(args.seeds)]
        lock = Hardened(HardenedConfig(seed=seed, reproducible=True))
        own = lock.lock(models[seed], train).model
        other = lock.lock(models[other_seed], train).model
        attacks: list[tuple[str, dict[str, object]]] = []
        for case in args.cases:
            fraction, epochs = case.split(":")
            attacks.append(("finetune", {"data_fraction": float(fraction), "epochs": int(epochs)}))
        if not args.no_search:
            attacks += [("flip-back", {"max_flips": 300}), ("retrace", {"num_suspects": 600})]
        for name, options in attacks:
            # The harness's options with seed = model seed: same samples, same batches.
            opts = {**options, "seed": seed}
            a = ATTACKS.build(name, {**opts, "scratch": True}).run(own, train)
            b = ATTACKS.build(name, {**opts, "scratch": False}).run(other, train)
            row = {
                "benchmark": "hardened_head_start",
                "dataset": dataset,
                "attack": name,
                "options": options,
                "seed": seed,
                "other_seed": other_seed,
                "own": accuracy(a.model, test),
                "other": accuracy(b.model, test),
                "scratch": accuracy(a.baselines["scratch"], test),
                "environment": env,
            }
            append_jsonl(args.out, [row])
            accs = " ".join(f"{k} {row[k]:.4f}" for k in ("own", "other", "scratch"))
            print(f"seed {seed} {name} {options}: {accs}", flush=True)


def print_table(rows: list[dict]) -> None:
    """Mean ± std over seeds of own, other and scratch accuracy (%) and the two gaps (points)."""
    from collections import defaultdict

    from advparams.reports import mean_std

    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["attack"], json.dumps(r["options"], sort_keys=False))].append(r)

    def cell(values: list[float]) -> str:
        m, s = mean_std([100 * v for v in values])
        return f"{m:.2f} ± {s:.2f}"

    print("| attack (harness options) | seeds | own % | other % | scratch % | own − other (pp) | own − scratch (pp) |")
    print("|---|---|---|---|---|---|---|")
    for (attack, options), rs in groups.items():
        opts = ", ".join(f"{k} {v}" for k, v in json.loads(options).items())
        seeds = ", ".join(str(r["seed"]) for r in sorted(rs, key=lambda r: r["seed"]))
        own, other, scratch = ([r[k] for r in rs] for k in ("own", "other", "scratch"))
        gaps_o = [a - b for a, b in zip(own, other, strict=True)]
        gaps_s = [a - b for a, b in zip(own, scratch, strict=True)]
        print(
            f"| {attack} ({opts}) | {seeds} | {cell(own)} | {cell(other)} | {cell(scratch)} | "
            f"{cell(gaps_o)} | {cell(gaps_s)} |"
        )


if __name__ == "__main__":
    main()
