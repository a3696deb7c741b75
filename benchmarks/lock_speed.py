"""Benchmark: what a lock costs, measured against one forward+backward pass over the
same lock samples, for the batched search (the default) and the old greedy one.

Per model and seed, in one run: the lock's seconds, the seconds of one forward+backward
pass over the same lock samples (median of 3, the same code path the lock uses), their
ratio, the passes the lock counted, the values changed, locked test accuracy, peak
resident memory (each lock runs in a fresh subprocess so its peak is its own) and
bit-exact unlocking. Both searches run on the same trained models.

LeNet-5 runs on Fashion-MNIST (1x28x28). The VGG-style net and ResNet-18 run on 3x32x32
inputs: CIFAR-10 cannot be had on the project's machines, so they are trained briefly on
Fashion-MNIST zero-padded to 32x32 with the grey channel repeated (a real task of
CIFAR's input shape). ``large`` is ResNet-18 at width 96 (25.1 M parameters) on 3x224x224
inputs, untrained, locked against its own answers on 16 upsampled Fashion-MNIST images: it
shows how the cost grows, for timing only (the greedy search is stopped after two values,
for its cost per value). Trained models are cached under --cache.

    python benchmarks/lock_speed.py --models lenet vgg --seeds 0 1 2 --out docs/benchmarks/lock_speed_v2.jsonl
    python benchmarks/lock_speed.py --models resnet18 large --seeds 0 --out docs/benchmarks/lock_speed_v2.jsonl

Prints a Markdown table; appends one JSON line per model, seed and search to --out.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, fashion_mnist, log  # noqa: E402

from advparams import AdvParams, AdvParamsConfig, accuracy, load_checkpoint, save_checkpoint, unlock  # noqa: E402
from advparams.devices import resolve_device  # noqa: E402
from advparams.models import build_model, count_parameters  # noqa: E402
from advparams.registry import config_to_dict  # noqa: E402
from advparams.schemes.lock_samples import LockBatches  # noqa: E402
from advparams.schemes.locking import candidate_parameters, float_work_copy  # noqa: E402
from advparams.testing import state_equal  # noqa: E402
from advparams.training import TrainConfig, train_from_seed  # noqa: E402

SETUPS = {
    # name: (architecture, options, input channels, size, training samples, epochs, lock samples)
    "lenet": ("lenet", {}, 1, 28, 60000, 10, 1000),
    "vgg": ("vgg", {}, 3, 32, 10000, 2, 1000),
    "resnet18": ("resnet18", {}, 3, 32, 10000, 1, 256),
    "large": ("resnet18", {"width": 96}, 3, 224, 0, 0, 16),
}
SEARCHES = {
    "batched": {},  # the default
    "greedy": {"search": "greedy", "holdout": 0.0},  # the old search and stop rule
}
LARGE_BUDGET = {"batched": 100, "greedy": 2}  # greedy: two values, for its cost per value only


def checkpoint_path(name: str, seed: int, cache: Path) -> Path:
    if name == "lenet":  # shared with lock_fmnist_seeds.py (same recipe)
        return cache / f"lenet-fashion-mnist-seed{seed}"
    return cache / (f"{name}-bench" if seed == 0 else f"{name}-bench-seed{seed}")


def prepare(name: str, seed: int, cache: Path, device: torch.device) -> Path | None:
    arch, options, channels, size, n_train, epochs, _ = SETUPS[name]
    if name == "large":
        return None
    path = checkpoint_path(name, seed, cache)
    if (path / "model.json").exists():
        return path
    train_data = fashion_mnist("train", size, channels)
    train_data = train_data.subset(
        torch.randperm(len(train_data), generator=torch.Generator().manual_seed(seed))[:n_train]
    )
    args = {"num_classes": 10, "in_channels": channels, "input_size": size, **options}
    log(f"training {name} seed {seed} on {n_train} samples for {epochs} epochs ...")
    start = time.perf_counter()
    trained = train_from_seed(arch, args, train_data, TrainConfig(epochs=epochs), seed=seed, device=device).model
    cache.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        trained,
        path,
        architecture=arch,
        arguments=args,
        dataset="fashion-mnist" if name == "lenet" else None,
        record={"train_samples": n_train, "epochs": epochs, "seed": seed, "seconds": time.perf_counter() - start},
    )
    return path


def pass_seconds(model: torch.nn.Module, data: object, cfg: AdvParamsConfig, device: torch.device) -> float:
    """Median of 3 forward+backward passes over the lock samples, as the lock draws them."""
    work = float_work_copy(model)
    cands = candidate_parameters(work)
    samples = LockBatches(data, cfg.num_samples, cfg.batch_size, torch.Generator().manual_seed(cfg.seed), device)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        samples.gradients(work, cands, cfg.objective, cfg.loss_cap)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[1]


def child(name: str, seed: int, search: str, cache: Path, device: torch.device) -> dict:
    arch, options, channels, size, _, _, num_samples = SETUPS[name]
    overrides: dict = {"num_samples": num_samples, "seed": seed, **SEARCHES[search]}
    if name == "large":
        torch.manual_seed(seed)
        model = build_model(arch, {"num_classes": 10, "in_channels": 3, "input_size": size, **options}, seed=seed)
        model = model.to(device).eval()
        base = fashion_mnist("test", 32, 3)
        idx = torch.arange(256)
        images = torch.nn.functional.interpolate(base.images[idx].float(), size=size).round().to(torch.uint8)
        from advparams.data import ImageDataset

        # untrained: its own answers are the labels, so the lock has real work (to move them)
        probe = ImageDataset(images, base.labels[idx], mean=base.mean, std=base.std, num_classes=10)
        with torch.no_grad():
            own = torch.cat([model(x.to(device)).argmax(1).cpu() for x in probe.tensors()[0].split(8)])
        train_data = test_data = ImageDataset(images, own, mean=base.mean, std=base.std, num_classes=10)
        overrides |= {"max_params": LARGE_BUDGET[search], "batch_size": num_samples}
    else:
        model = load_checkpoint(checkpoint_path(name, seed, cache), device=device).model
        train_data, test_data = fashion_mnist("train", size, channels), fashion_mnist("test", size, channels)
    cfg = AdvParamsConfig(**overrides)
    one_pass = pass_seconds(model, train_data, cfg, device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = AdvParams(cfg).lock(model, train_data)
    rep = result.report
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {
        "benchmark": "lock_speed_v2",
        "model": name,
        "architecture": arch,
        "seed": seed,
        "search": search,
        "input": f"{channels}x{size}x{size}",
        "params_total": count_parameters(model),
        "params_changed": rep.params_changed,
        "num_samples": rep.num_samples,
        "holdout_samples": rep.holdout_samples,
        "rounds": rep.rounds,
        "stopped": rep.stopped,
        "target_met": rep.target_met,
        "lock_seconds": rep.seconds,
        "pass_seconds": one_pass,
        "ratio": rep.seconds / one_pass,
        "forward_passes": rep.forward_passes,
        "backward_passes": rep.backward_passes,
        "lock_accuracy_before": rep.lock_accuracy_before,
        "lock_accuracy_after": rep.lock_accuracy_after,
        "search_accuracy_after": rep.search_accuracy_after,
        "holdout_accuracy_after": rep.holdout_accuracy_after,
        "accuracy_clean": accuracy(model, test_data) if name != "large" else None,
        "accuracy_locked": accuracy(result.model, test_data) if name != "large" else None,
        "unlock_exact": state_equal(unlock(result.model, result.key), model),
        "peak_rss_mib": rss_after,
        "rss_before_lock_mib": rss_before,
        "config": config_to_dict(cfg),
        "env": environment(device),
    }
    if device.type == "cuda":
        row["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--searches", nargs="+", default=list(SEARCHES), choices=list(SEARCHES))
    parser.add_argument("--cache", default="runs/bench", help="where trained models are cached")
    parser.add_argument("--out", help="JSON-lines file to append results to")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "SEED", "SEARCH"), help=argparse.SUPPRESS)
    parser.add_argument("--table", metavar="ROWS", help="only print the table of a JSON-lines file of rows")
    parser.add_argument("--targets", metavar="ROWS", help="only print issue 16's targets against ROWS")
    args = parser.parse_args()
    if args.table or args.targets:
        rows = [json.loads(line) for line in Path(args.table or args.targets).read_text().splitlines() if line.strip()]
        (print_table if args.table else print_targets)(rows)
        return
    device = resolve_device(args.device)
    if args.child:
        name, seed, search = args.child
        print(json.dumps(child(name, int(seed), search, Path(args.cache), device)))
        return
    rows = []
    for name in args.models:
        for seed in args.seeds:
            prepare(name, seed, Path(args.cache), device)
            for search in args.searches:
                log(f"locking {name} seed {seed} ({search}) ...")
                cmd = [sys.executable, __file__, "--child", name, str(seed), search, "--cache", args.cache]
                proc = subprocess.run([*cmd, "--device", args.device], capture_output=True, text=True, check=True)
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                append_jsonl(args.out, rows[-1:])
                r = rows[-1]
                log(f"  {r['lock_seconds']:.1f} s = {r['ratio']:.2f} passes of {r['pass_seconds']:.2f} s, "
                    f"{r['params_changed']} values, locked {r['accuracy_locked']}")  # fmt: skip
    print_table(rows)


NAMES = {"lenet": "LeNet-5", "vgg": "VGG-style", "resnet18": "ResNet-18", "large": "ResNet-18 w96, 224x224"}


def print_table(rows: list[dict]) -> None:
    """The Markdown table of docs/advparams.md ("Locking at scale"); rows of the first version
    of this benchmark (no ``search`` field: the greedy search, repeated locks) get its own table."""
    if rows and "search" not in rows[0]:
        print_table_v1(rows)
        return
    print(
        "| model | seed | search | params | clean test acc % | values changed | lock s | pass s | ratio | "
        "forward / backward passes | locked test acc % | held-out acc % | bit-exact | peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        clean = "n/a" if r["accuracy_clean"] is None else f"{100 * r['accuracy_clean']:.2f}"
        acc = "n/a" if r["accuracy_locked"] is None else f"{100 * r['accuracy_locked']:.2f}"
        held = "n/a" if r["holdout_accuracy_after"] is None else f"{100 * r['holdout_accuracy_after']:.2f}"
        search = "batched (default)" if r["search"] == "batched" else "greedy (old)"
        print(
            f"| {NAMES.get(r['model'], r['model'])} | {r['seed']} | {search} | {r['params_total']:,} | {clean} | "
            f"{r['params_changed']} | {r['lock_seconds']:.2f} | {r['pass_seconds']:.2f} | {r['ratio']:.2f} | "
            f"{r['forward_passes']:.2f} / {r['backward_passes']:.2f} | {acc} | {held} | "
            f"{'yes' if r['unlock_exact'] else 'NO'} | {r['peak_rss_mib']:.0f} |"
        )


RATIO_LIMITS = {"lenet": 8.0, "vgg": 5.0, "resnet18": 5.0}  # issue 16's targets


def print_targets(rows: list[dict]) -> None:
    """Issue 16's targets against the batched search, the old (greedy) one in brackets."""
    models = [m for m in RATIO_LIMITS if any(r["model"] == m for r in rows)]
    by = {(r["model"], r["search"], r["seed"]): r for r in rows}

    def seeds(m: str) -> list[int]:
        return sorted({r["seed"] for r in rows if r["model"] == m})

    def span(m: str, search: str, key: str, scale: float, digits: int) -> tuple[str, float]:
        vals = [scale * by[(m, search, s)][key] for s in seeds(m) if (m, search, s) in by]
        text = f"{min(vals):.{digits}f}" if len(vals) == 1 else f"{min(vals):.{digits}f}-{max(vals):.{digits}f}"
        return text, max(vals)

    def cell(m: str, key: str, scale: float, digits: int, limit: float) -> str:
        new, worst_new = span(m, "batched", key, scale, digits)
        old, worst_old = span(m, "greedy", key, scale, digits)
        return f"{new} {'✓' if worst_new <= limit else '✗'} (old: {old}{'' if worst_old <= limit else ' ✗'})"

    head = [f"{NAMES[m]} ({len(seeds(m))} seed{'s' if len(seeds(m)) > 1 else ''})" for m in models]
    print("| target (issue 16) | " + " | ".join(head) + " |")
    print("|---|" + "---|" * len(models))
    limits = " / ".join(f"{RATIO_LIMITS[m]:g}" for m in models)
    print(f"| ratio ≤ {limits} | " + " | ".join(cell(m, "ratio", 1.0, 2, RATIO_LIMITS[m]) for m in models) + " |")
    print(
        "| locked test accuracy ≤ 12 % | "
        + " | ".join(cell(m, "accuracy_locked", 100.0, 2, 12.0) for m in models)
        + " |"
    )
    cells = []
    for m in models:
        parts, ok = [], True
        for s in seeds(m):
            new, old = by[(m, "batched", s)]["params_changed"], by[(m, "greedy", s)]["params_changed"]
            met = new <= 1.5 * old
            ok &= met
            text = f"{new}/{old} ({new / old:.2f})"
            parts.append(text if met else f"**{text} ✗**")
        cells.append(", ".join(parts) + (" ✓" if ok else ""))
    print("| values ≤ 1.5 × the old search's | " + " | ".join(cells) + " |")


def print_table_v1(rows: list[dict]) -> None:
    """The first version's rows: the greedy search, each model locked ``repeats`` times."""
    print(
        "| model | input | params | lock samples | changed | share % | lock s (runs) | clean acc % | "
        "locked acc % | bit-exact | peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        runs = ", ".join(f"{t:.2f}" for t in r["lock_seconds"])
        print(
            f"| {r['model']} | {r['input']} | {r['params_total']:,} | {r['num_samples']} | {r['params_changed']} | "
            f"{r['proportion_percent']:.6f} | {r['lock_seconds_median']:.2f} ({runs}) | "
            f"{100 * r['accuracy_clean']:.2f} | {100 * r['accuracy_locked']:.2f} | {r['unlock_exact']} | "
            f"{r['peak_rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
