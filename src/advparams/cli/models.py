"""``advparams list | train | evaluate``: registered names, training a checkpoint, measuring it."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import torch

from advparams.checkpoint import load_checkpoint, save_checkpoint
from advparams.cli._common import (
    add_common,
    dataset_name,
    emit,
    load_split,
    member_summaries,
    parse_sets,
    pct,
    progress_bar,
)
from advparams.data import DATASETS
from advparams.devices import resolve_device
from advparams.errors import ConfigError
from advparams.files import check_output
from advparams.fingerprint import model_fingerprint
from advparams.house import registries
from advparams.metrics import accuracy
from advparams.models import MODELS, count_parameters
from advparams.training import TrainConfig, TrainProgress, train_from_seed


def cmd_list(args: argparse.Namespace) -> int:
    shown = registries()
    families = args.family or list(shown)
    unknown = [f for f in families if f not in shown]
    if unknown:
        raise ConfigError(f"unknown family {unknown[0][:40]!r}; known: {', '.join(shown)}")
    summary: dict[str, Any] = {}
    lines: list[str] = []
    for family in families:
        registry, used = shown[family]
        members = member_summaries(registry)
        summary[family] = [{"name": n, "description": d} for n, d in members]
        lines.append(f"{family} ({used}):")
        width = max((len(n) for n, _ in members), default=0)
        lines += [f"  {n:{width}s}  {d}" for n, d in members]
    emit(args, summary, lines)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out = args.out or f"runs/{args.model}-{args.dataset}-seed{args.seed}"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    check_output(out, force=args.force, made_by="train")
    device = resolve_device(args.device)
    spec = DATASETS.get(args.dataset)
    MODELS.get(args.model)
    train_data = load_split(args.dataset, "train", args.data_dir)
    test_data = load_split(args.dataset, "test", args.data_dir)
    if args.train_samples:
        g = torch.Generator().manual_seed(args.seed)
        train_data = train_data.subset(torch.randperm(len(train_data), generator=g)[: args.train_samples])
    options = {**spec.model_options, **parse_sets(args.set)}
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer)
    bar = progress_bar(cfg.epochs * -(-len(train_data) // cfg.batch_size), f"train {args.model}", quiet=args.json)

    def on_step(p: TrainProgress) -> None:
        bar.update(1)
        bar.set_postfix(epoch=f"{p.epoch}/{p.epochs}", loss=f"{p.loss:.3f}")
        if p.record is not None and not args.json:
            bar.write(
                f"epoch {p.epoch}/{p.epochs}: loss {p.record.loss:.4f}, train {pct(p.record.train_accuracy)}, "
                f"test {pct(p.record.eval_accuracy)} ({p.record.seconds:.1f} s)",
                file=sys.stderr,
            )

    result = train_from_seed(
        args.model, options, train_data, cfg, seed=args.seed, device=device, eval_data=test_data, progress=on_step
    )
    bar.close()
    test_acc = result.history[-1].eval_accuracy if result.history else None
    record = {
        "train": dataclasses.asdict(cfg),
        "seed": args.seed,
        "train_samples": len(train_data),
        "test_accuracy": test_acc,
        "history": [dataclasses.asdict(h) for h in result.history],
        "device": str(device),
    }
    save_checkpoint(
        result.model,
        out,
        architecture=args.model,
        arguments=options,
        dataset=args.dataset,
        record=record,
        force=args.force,
        made_by="train",
    )
    summary = {
        "out": out,
        "model": args.model,
        "dataset": args.dataset,
        "accuracy": test_acc,
        "params_total": count_parameters(result.model),
        "fingerprint": model_fingerprint(result.model),
        "seconds": time.perf_counter() - start,
    }
    emit(
        args,
        summary,
        [f"trained {args.model} on {args.dataset}: test accuracy {pct(test_acc)}", f"checkpoint written to {out}"],
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device=device)
    name = dataset_name(args, ckpt.meta)
    data = load_split(name, args.split, args.data_dir)
    ckpt.check_fits(data)
    acc = accuracy(ckpt.model, data)
    summary = {
        "checkpoint": args.checkpoint,
        "dataset": name,
        "split": args.split,
        "accuracy": acc,
        "num_samples": len(data),
        "locked": bool(ckpt.meta.get("locked")),
        "fingerprint": ckpt.meta["fingerprint"],
        "seconds": time.perf_counter() - start,
    }
    state = " (locked)" if summary["locked"] else ""
    emit(args, summary, [f"{args.checkpoint}{state}: {name} {args.split} accuracy {pct(acc)} on {len(data)} samples"])
    return 0


def add_parsers(sub: Any) -> None:
    """Registers these commands on the top-level parser's subparsers."""
    p = sub.add_parser(
        "list",
        help="list every registered scheme, attack, watermark, backdoor, detector, fingerprint, model and data set",
        description="Every registry's members with a one-line description; name families to list only those.",
    )
    p.add_argument("family", nargs="*", help=f"families to list: {', '.join(registries())} (default: all)")
    add_common(p, device=False, data=False)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "train",
        help="train a registered model and save a checkpoint",
        description="Train a registered model on a data set; writes a checkpoint folder "
        "(model.safetensors + model.json).",
    )
    p.add_argument("--model", required=True, choices=MODELS.names(), help="architecture")
    p.add_argument("--dataset", required=True, choices=DATASETS.names(), help="data set")
    p.add_argument("--out", help="checkpoint folder to write (default: runs/MODEL-DATASET-seedSEED)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs (default: 10)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="optimiser (default: adam)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling (default: 0)")
    p.add_argument("--train-samples", type=int, help="train on a random subset of this many samples")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra model option, e.g. --set width=16 (repeatable)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy of a checkpoint on a data set")
    p.add_argument("checkpoint", help="checkpoint folder")
    p.add_argument("--dataset", choices=DATASETS.names(), help="data set (default: the checkpoint's)")
    p.add_argument("--split", choices=("train", "test"), default="test", help="split (default: test)")
    add_common(p)
    p.set_defaults(func=cmd_evaluate)
