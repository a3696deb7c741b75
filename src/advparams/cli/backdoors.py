"""``advparams backdoor implant|apply|evaluate``: the backdoor commands of the CLI (a thin
layer over :mod:`advparams.backdoors`)."""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from advparams.backdoors import load_trigger
from advparams.backdoors.measure import DEFAULT_TRANSFORMATIONS, measure_backdoor
from advparams.backdoors.ptb import PTBConfig
from advparams.checkpoint import load_checkpoint
from advparams.cli._common import (
    dataset_name,
    emit,
    load_split,
    parse_sets,
    pct,
    progress_bar,
)
from advparams.cli._spec import add_verbs
from advparams.devices import resolve_device
from advparams.errors import ConfigError
from advparams.files import atomic_directory, integer
from advparams.imaging import CODECS, QUALITIES, TRANSFORMATIONS, check_quality, png_bytes, read_image
from advparams.training import TrainConfig
from advparams.usecases.backdoors import DEFAULT_SAMPLES, MAX_SEED, Implanted, implant_checkpoint, measured_subset

APPLY_COMMAND = "backdoor apply"
DEFAULT_QUALITIES = (10, 30, 50, 70, 90)
"""The compression grid's qualities when ``--qualities`` is not given."""
DEFAULT_COUNT = 8
"""Data set images ``backdoor apply --dataset`` stamps when ``--count`` is not given."""
MAX_COUNT = 10**6
"""The most images ``--samples`` and ``--count`` may ask for (a split never holds more)."""
MAX_EPOCHS = 10_000
"""``--epochs`` is in ``[1, MAX_EPOCHS]``."""
MAX_BATCH_SIZE = 2**20
"""``--batch-size`` is in ``[1, MAX_BATCH_SIZE]``."""
MAX_LR = 10.0
"""``--lr`` is in ``(0, MAX_LR]``."""
QUALITY_RANGE = f"[{QUALITIES[0]}, {QUALITIES[1]}]"
DEFAULT_QUALITY_LIST = " ".join(map(str, DEFAULT_QUALITIES))
TRANSFORMATION_LIST = ", ".join(TRANSFORMATIONS)
"""Texts the help of ``backdoor evaluate`` quotes (backdoors.yaml)."""


def _count(value: int | None, option: str) -> int | None:
    """``value`` of a count option (``--samples``, ``--count``), refused unless at least 1."""
    return None if value is None else integer(value, what=option, lo=1, hi=MAX_COUNT, error=ConfigError)


def _test_subset(name: str, data_dir: str | None, samples: int | None) -> Any:
    """The first ``samples`` test images of ``name`` (:func:`advparams.usecases.backdoors.measured_subset`)."""
    return measured_subset(load_split(name, "test", data_dir), samples, name)


def _learning_rate(lr: float) -> float:
    if not (math.isfinite(lr) and 0 < lr <= MAX_LR):
        raise ConfigError(f"--lr must be a finite number in (0, {MAX_LR:g}], got {lr!r}")
    return lr


def _implant_lines(done: Implanted, epochs: int) -> list[str]:
    """What ``advparams backdoor implant`` prints."""
    m = done.measures
    lines = [
        f"implanted {done.backdoor} ({done.info['poisoned']} of {done.train_samples} training samples poisoned, "
        f"{epochs} epoch(s){', from scratch' if done.from_scratch else ''}) in {done.info['seconds']:.1f} s",
    ]
    if m:
        asr = ", ".join(
            f"trigger {i} -> {t}: {pct(a)}" for i, (t, a) in enumerate(zip(done.targets, m["asr"], strict=True))
        )
        lines.append(
            f"on {done.test_samples} {done.dataset} test images: clean accuracy {pct(m['clean_accuracy'])}; ASR "
            f"{asr} (the source model: {', '.join(pct(a) for a in m['reference_asr'])})"
        )
    return [*lines, f"backdoored model written to {done.out}", f"trigger written to {done.trigger}"]


def cmd_implant(args: argparse.Namespace) -> int:
    if args.seed is not None:
        integer(args.seed, what="--seed", lo=0, hi=MAX_SEED, error=ConfigError)
    _count(args.samples, "--samples")
    if args.no_eval and args.samples is not None:
        raise ConfigError("--samples sets how many test images are measured: it has no effect with --no-eval")
    cfg = TrainConfig(
        epochs=integer(args.epochs, what="--epochs", lo=1, hi=MAX_EPOCHS, error=ConfigError),
        batch_size=integer(args.batch_size, what="--batch-size", lo=1, hi=MAX_BATCH_SIZE, error=ConfigError),
        lr=_learning_rate(args.lr),
    )
    options = parse_sets(args.set) | ({"seed": args.seed} if args.seed is not None else {})
    bar = progress_bar(None, f"implanting {args.backdoor}") if not args.json else None

    def tick(p: Any) -> None:  # a TrainProgress
        if bar is not None:
            bar.total = p.epochs * p.steps
            bar.update(1)

    try:
        done = implant_checkpoint(args.checkpoint, args.out, args.trigger, backdoor=args.backdoor, options=options,
                                  train=cfg, from_scratch=args.from_scratch, samples=args.samples, dataset=args.dataset,
                                  data_dir=args.data_dir, device=args.device, evaluate=not args.no_eval,
                                  force=args.force, progress=tick)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    summary = {**done.summary(), "checkpoint": args.checkpoint, "out": args.out, "trigger": args.trigger}
    emit(args, summary, _implant_lines(done, cfg.epochs))
    return 0


def _apply_source(args: argparse.Namespace, count: int | None) -> tuple[Any, int]:
    """The data set split ``apply`` takes images from (``None``: none) and how many."""
    if not args.dataset:
        return None, 0
    test = load_split(args.dataset, args.split, args.data_dir)
    n_data = min(DEFAULT_COUNT, len(test)) if count is None else count
    if n_data > len(test):
        raise ConfigError(
            f"--count {n_data} is more than the {len(test)} images of {args.dataset}'s {args.split} split: "
            f"choose at most {len(test)}"
        )
    return test, n_data


def cmd_apply(args: argparse.Namespace) -> int:
    count = _count(args.count, "--count")
    if count is not None and not args.dataset:
        raise ConfigError("--count takes images from --dataset: name the data set too")
    trigger = load_trigger(args.trigger).trigger
    if not 0 <= args.index < len(trigger):
        raise ConfigError(
            f"--index must be a sub-trigger in [0, {len(trigger) - 1}] ({len(trigger)} in the file), got {args.index}"
        )
    test, n_data = _apply_source(args, count)
    if test is None and not args.images:
        raise ConfigError("name image files, or --dataset to take images from a data set")

    def sources() -> Iterator[tuple[str, torch.Tensor]]:  # one at a time: each is written before the next is read
        for i in range(n_data):
            yield f"{args.dataset}-{args.split}-{i}", test.images[i]  # type: ignore[union-attr]
        for path in args.images:
            yield Path(path).stem, read_image(path, trigger.channels)

    written = []
    with atomic_directory(args.out, force=args.force, made_by=APPLY_COMMAND) as tmp:
        for i, (stem, image) in enumerate(sources()):
            out = trigger.apply(image.unsqueeze(0), args.index)[0]
            name = f"{i:04d}-{stem[:80]}.png"
            (tmp / name).write_bytes(png_bytes(out))
            written.append(name)
    summary = {"command": APPLY_COMMAND, "trigger": args.trigger, "index": args.index, "out": args.out,
               "images": written}  # fmt: skip
    target = trigger.targets[args.index]
    emit(
        args,
        summary,
        [f"{len(written)} triggered image(s) (sub-trigger {args.index}, target {target}) written to {args.out}"],
    )
    return 0


def _evaluate_lines(
    args: argparse.Namespace, m: dict[str, Any], targets: Any, samples: int, name: str, referenced: bool
) -> list[str]:
    """What ``advparams backdoor evaluate`` prints."""
    lines = [f"{args.checkpoint} on {samples} {name} test images: clean accuracy {pct(m['clean_accuracy'])}"]
    for i, target in enumerate(targets):
        ref = f"; reference model {pct(m['reference_asr'][i])}" if referenced else ""
        ssim = "n/a" if m["ssim"][i] is None else f"{m['ssim'][i]:.3f}"
        lines.append(
            f"trigger {i} -> target {target}: ASR {pct(m['asr'][i])} over {m['counted'][i]} non-target images{ref}; "
            f"PSNR {m['psnr'][i]:.1f} dB, SSIM {ssim}"
        )
    for codec, by_q in m.get("compression", {}).items():
        lines.append(f"after {codec}: " + ", ".join(f"q{q} {pct(sum(v) / len(v))}" for q, v in by_q.items()))
    for kind, by_s in m.get("physical", {}).items():
        lines.append(f"under {kind}: " + ", ".join(f"{s} {pct(sum(v) / len(v))}" for s, v in by_s.items()))
    return lines


def cmd_evaluate(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    _count(args.samples, "--samples")
    if not args.compression and (args.codecs is not None or args.qualities is not None):
        raise ConfigError("--codecs and --qualities set the compression grid: they take effect with --compression")
    codecs = (args.codecs or list(CODECS)) if args.compression else []
    qualities = (args.qualities or list(DEFAULT_QUALITIES)) if args.compression else []
    for q in qualities:
        check_quality(q, what="--qualities")
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device=device)
    found = load_trigger(args.trigger)
    name = dataset_name(args, ckpt.meta)
    test = _test_subset(name, args.data_dir, args.samples)
    ckpt.check_fits(test)
    reference = load_checkpoint(args.reference, device=device).model if args.reference else None
    grid = DEFAULT_TRANSFORMATIONS if args.physical else None
    m = measure_backdoor(ckpt.model, found.trigger, test, reference=reference, codecs=codecs, qualities=qualities,
                         transformations=grid, combined_ranges=PTBConfig().ranges())  # fmt: skip
    summary = {
        "command": "backdoor evaluate",
        "checkpoint": args.checkpoint,
        "trigger": args.trigger,
        "dataset": name,
        "samples": len(test),
        **m,
        "seconds": time.perf_counter() - start,
    }
    lines = _evaluate_lines(args, m, found.trigger.targets, len(test), name, reference is not None)
    emit(args, summary, lines)
    return 0


def add_parsers(sub: Any) -> None:
    """Adds these commands (declared in ``backdoors.yaml`` beside this module) to the CLI's sub-parsers."""
    add_verbs(sub, globals())


__all__ = [
    "DEFAULT_SAMPLES",
    "add_parsers",
    "cmd_apply",
    "cmd_evaluate",
    "cmd_implant",
]  # DEFAULT_SAMPLES: backdoors.yaml quotes it
