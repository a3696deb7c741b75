"""``advparams list | train | evaluate``: registered names, training a checkpoint, measuring it."""

from __future__ import annotations

import argparse
from typing import Any

from advparams.cli._common import (
    add_common,
    emit,
    member_summaries,
    parse_sets,
    pct,
    train_progress,
)
from advparams.data import DATASETS
from advparams.errors import ConfigError
from advparams.house import registries
from advparams.models import MODELS
from advparams.training import TrainConfig
from advparams.usecases.models import evaluate_checkpoint, train_checkpoint


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
    out = args.out or f"runs/{args.model}-{args.dataset}-seed{args.seed}"
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer)
    DATASETS.get(args.dataset)
    MODELS.get(args.model)
    bar, on_step = train_progress(args.model, quiet=args.json)
    try:
        done = train_checkpoint(args.model, args.dataset, out, options=parse_sets(args.set), train=cfg, seed=args.seed,
                                train_samples=args.train_samples, data_dir=args.data_dir, device=args.device,
                                force=args.force, progress=on_step)  # fmt: skip
    finally:
        bar.close()
    summary = {**done.summary(), "out": out}
    lines = [f"trained {args.model} on {args.dataset}: test accuracy {pct(done.test_accuracy)}",
             f"checkpoint written to {out}"]  # fmt: skip
    emit(args, summary, lines)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    done = evaluate_checkpoint(args.checkpoint, dataset=args.dataset, split=args.split, data_dir=args.data_dir,
                               device=args.device)  # fmt: skip
    summary = {**done.summary(), "checkpoint": args.checkpoint}
    state = " (locked)" if done.locked else ""
    line = (
        f"{args.checkpoint}{state}: {done.dataset} {args.split} accuracy {pct(done.accuracy)} on {done.samples} samples"
    )
    emit(args, summary, [line])
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
    p.add_argument(
        "--train-samples",
        type=int,
        help="train on a fixed subset of this many samples (the same for every --seed, as an evaluation's "
        "train_samples)",
    )
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
