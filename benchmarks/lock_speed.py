"""Benchmark: how long AdvParams takes to lock, how much memory, how many parameters.

LeNet-5 runs on Fashion-MNIST (1x28x28). The VGG-style net and ResNet-18 run on 3x32x32
inputs: CIFAR-10 cannot be had on the project's machines, so they are trained briefly on
Fashion-MNIST zero-padded to 32x32 with the grey channel repeated three times (a real
task of CIFAR's input shape). Trained models are cached under --cache. Each lock runs in
a fresh subprocess so its peak resident memory is its own.

    python benchmarks/lock_speed.py --out docs/benchmarks/lock_speed.jsonl

Prints a Markdown table; appends one JSON line per model to --out.
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
from advparams.models import count_parameters  # noqa: E402
from advparams.registry import config_to_dict  # noqa: E402
from advparams.testing import state_equal  # noqa: E402
from advparams.training import TrainConfig, train_from_seed  # noqa: E402

SETUPS = {
    # name: (input channels, size, training samples, epochs)
    "lenet": (1, 28, 60000, 10),
    "vgg": (3, 32, 10000, 2),
    "resnet18": (3, 32, 10000, 1),
}


def checkpoint_path(model_name: str, cache: Path) -> Path:
    # LeNet-5 is the seed-0 model of lock_fmnist_seeds.py (same recipe), so it is shared.
    return cache / ("lenet-fashion-mnist-seed0" if model_name == "lenet" else f"{model_name}-bench")


def prepare(model_name: str, cache: Path, device: torch.device) -> Path:
    path = checkpoint_path(model_name, cache)
    if (path / "model.json").exists():
        return path
    channels, size, n_train, epochs = SETUPS[model_name]
    train_data = fashion_mnist("train", size, channels)
    train_data = train_data.subset(
        torch.randperm(len(train_data), generator=torch.Generator().manual_seed(0))[:n_train]
    )
    args = {"num_classes": 10, "in_channels": channels, "input_size": size}
    log(f"training {model_name} on {n_train} samples for {epochs} epochs ...")
    start = time.perf_counter()
    # seed 0, as lock_fmnist_seeds.py
    trained = train_from_seed(model_name, args, train_data, TrainConfig(epochs=epochs), seed=0, device=device).model
    cache.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        trained,
        path,
        architecture=model_name,
        arguments=args,
        dataset=None,
        record={"train_samples": n_train, "epochs": epochs, "seconds": time.perf_counter() - start},
    )
    return path


def child(model_name: str, ckpt: Path, device: torch.device, repeats: int, overrides: dict) -> dict:
    channels, size, _, _ = SETUPS[model_name]
    model = load_checkpoint(ckpt, device=device).model
    train_data, test_data = fashion_mnist("train", size, channels), fashion_mnist("test", size, channels)
    cfg = AdvParamsConfig(**overrides)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, result = [], None
    for _ in range(repeats):
        result = AdvParams(cfg).lock(model, train_data)
        times.append(result.report.seconds)
    assert result is not None
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    exact = state_equal(unlock(result.model, result.key), model)
    row = {
        "benchmark": "lock_speed",
        "model": model_name,
        "input": f"{channels}x{size}x{size}",
        "params_total": count_parameters(model),
        "params_changed": result.report.params_changed,
        "proportion_percent": result.report.proportion_percent,
        "num_samples": result.report.num_samples,
        "rounds": result.report.rounds,
        "stopped": result.report.stopped,
        "lock_seconds": times,
        "lock_seconds_median": sorted(times)[len(times) // 2],
        "accuracy_clean": accuracy(model, test_data),
        "accuracy_locked": accuracy(result.model, test_data),
        "unlock_exact": exact,
        "peak_rss_mib": rss_after,
        "rss_before_lock_mib": rss_before,
        "config": config_to_dict(cfg),
        **{"env": environment(device)},
    }
    if device.type == "cuda":
        row["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--cache", default="runs/bench", help="where trained models are cached")
    parser.add_argument("--out", help="JSON-lines file to append results to")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="locks per model (timing spread)")
    parser.add_argument("--num-samples", type=int, help="override AdvParams' num_samples")
    parser.add_argument("--objective", choices=("capped-ce", "ce"), help="override AdvParams' objective")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    overrides = {k: v for k, v in (("num_samples", args.num_samples), ("objective", args.objective)) if v is not None}
    if args.child:
        print(
            json.dumps(
                child(args.child, checkpoint_path(args.child, Path(args.cache)), device, args.repeats, overrides)
            )
        )
        return
    rows = []
    for name in args.models:
        prepare(name, Path(args.cache), device)
        log(f"locking {name} ({args.repeats}x) ...")
        cmd = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--cache",
            args.cache,
            "--device",
            args.device,
            "--repeats",
            str(args.repeats),
        ] + [f"--{k.replace('_', '-')}={v}" for k, v in overrides.items()]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        append_jsonl(args.out, rows[-1:])
    print(
        "| model | input | params | changed | share % | lock samples | lock s (median of runs) | "
        "clean acc | locked acc | exact | peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        runs = ", ".join(f"{t:.2f}" for t in r["lock_seconds"])
        print(
            f"| {r['model']} | {r['input']} | {r['params_total']:,} | {r['params_changed']} | "
            f"{r['proportion_percent']:.6f} | {r['num_samples']} | {r['lock_seconds_median']:.2f} ({runs}) | "
            f"{100 * r['accuracy_clean']:.2f} | {100 * r['accuracy_locked']:.2f} | {r['unlock_exact']} | "
            f"{r['peak_rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
