"""``advparams list | train | evaluate``: registered names, training a checkpoint, measuring it."""

from __future__ import annotations

import argparse
from typing import Any

from advparams.cli._common import (
    PASSPHRASE_ENV,  # noqa: F401  (models.yaml's help names it)
    emit,
    member_summaries,
    parse_sets,
    pct,
    read_key,
    train_progress,
)
from advparams.cli._spec import add_verbs
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
    key = read_key(args) if args.key else None
    done = evaluate_checkpoint(args.checkpoint, dataset=args.dataset, data=args.data, split=args.split,
                               data_dir=args.data_dir, device=args.device, key=key)  # fmt: skip
    summary = {**done.summary(), "checkpoint": args.checkpoint, "unlocked_in_memory": key is not None}
    state = " (unlocked in memory)" if key is not None else " (locked)" if done.locked else ""
    line = (
        f"{args.checkpoint}{state}: {done.dataset} {args.split} accuracy {pct(done.accuracy)} on {done.samples} samples"
    )
    emit(args, summary, [line])
    return 0


def add_parsers(sub: Any) -> None:
    """Adds these commands (declared in ``models.yaml`` beside this module) to the CLI's sub-parsers."""
    add_verbs(sub, globals())
