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

from advparams._rng import isolated_seed
from advparams.backdoors import BACKDOORS, implant_from_seed, is_trigger_file, load_trigger, save_trigger
from advparams.backdoors.measure import DEFAULT_TRANSFORMATIONS, measure_backdoor
from advparams.backdoors.ptb import PTBConfig
from advparams.checkpoint import load_checkpoint, save_checkpoint
from advparams.cli._common import (
    add_common,
    dataset_name,
    distinct_outputs,
    emit,
    load_split,
    options_help,
    parse_sets,
    pct,
    progress_bar,
)
from advparams.devices import resolve_device
from advparams.errors import ConfigError
from advparams.files import atomic_directory, check_output, integer
from advparams.imaging import CODECS, QUALITIES, TRANSFORMATIONS, check_quality, png_bytes, read_image
from advparams.training import TrainConfig

IMPLANT_COMMAND = "backdoor implant"
APPLY_COMMAND = "backdoor apply"
DEFAULT_SAMPLES = 2000
"""Test images measured when ``--samples`` is not given (all of them when fewer)."""
DEFAULT_QUALITIES = (10, 30, 50, 70, 90)
"""The compression grid's qualities when ``--qualities`` is not given."""
DEFAULT_COUNT = 8
"""Data set images ``backdoor apply --dataset`` stamps when ``--count`` is not given."""
MAX_COUNT = 10**6
"""The most images ``--samples`` and ``--count`` may ask for (a split never holds more)."""
MAX_SEED = 2**63 - 1
"""Seeds are integers in ``[0, MAX_SEED]`` (what ``torch.Generator.manual_seed`` takes)."""
MAX_EPOCHS = 10_000
"""``--epochs`` is in ``[1, MAX_EPOCHS]``."""
MAX_BATCH_SIZE = 2**20
"""``--batch-size`` is in ``[1, MAX_BATCH_SIZE]``."""
MAX_LR = 10.0
"""``--lr`` is in ``(0, MAX_LR]``."""


def _count(value: int | None, option: str) -> int | None:
    """``value`` of a count option (``--samples``, ``--count``), refused unless at least 1."""
    return None if value is None else integer(value, what=option, lo=1, hi=MAX_COUNT, error=ConfigError)


def _test_subset(name: str, data_dir: str | None, samples: int | None) -> Any:
    """The first ``samples`` test images (default: :data:`DEFAULT_SAMPLES`, or all when fewer);
    asking for more than the split holds is refused, not cut short."""
    test = load_split(name, "test", data_dir)
    if samples is None:
        samples = min(DEFAULT_SAMPLES, len(test))
    elif samples > len(test):
        raise ConfigError(
            f"--samples {samples} is more than the {len(test)} test images of {name}: choose at most {len(test)}"
        )
    return test.subset(torch.arange(samples)) if samples < len(test) else test


def _learning_rate(lr: float) -> float:
    if not (math.isfinite(lr) and 0 < lr <= MAX_LR):
        raise ConfigError(f"--lr must be a finite number in (0, {MAX_LR:g}], got {lr!r}")
    return lr


def _seed(backdoor: Any) -> int:
    return integer(
        getattr(backdoor.config, "seed", 0), what="backdoor option seed", lo=0, hi=MAX_SEED, error=ConfigError
    )


def cmd_implant(args: argparse.Namespace) -> int:
    start = time.perf_counter()
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
    distinct_outputs(args.checkpoint, args.out, args.trigger)
    check_output(args.out, force=args.force, made_by=IMPLANT_COMMAND)
    check_output(args.trigger, force=args.force, accept=is_trigger_file)
    options = parse_sets(args.set) | ({"seed": args.seed} if args.seed is not None else {})
    backdoor = BACKDOORS.build(args.backdoor, options)
    seed = _seed(backdoor)
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device=device)
    if ckpt.meta.get("locked"):
        raise ConfigError(f"{args.checkpoint} is locked: unlock it first")
    name = dataset_name(args, ckpt.meta)
    data = load_split(name, "train", args.data_dir)
    ckpt.check_fits(data)
    test = None if args.no_eval else _test_subset(name, args.data_dir, args.samples)  # refused before training
    steps = cfg.epochs * -(-len(data) // cfg.batch_size)
    bar = progress_bar(steps, f"implanting {args.backdoor}") if not args.json else None
    tick = (lambda p: bar.update(1)) if bar is not None else None
    try:
        if args.from_scratch:
            res = implant_from_seed(
                backdoor, ckpt.architecture, dict(ckpt.arguments), data, cfg, seed=seed, device=device, progress=tick
            )
        else:
            with isolated_seed(seed, devices=[device] if device.type == "cuda" else []):  # dropout: reproducible
                res = backdoor.implant(ckpt.model, data, train=cfg, progress=tick)
    finally:
        if bar is not None:
            bar.close()
    measures: dict[str, Any] = {}
    if test is not None:
        measures = measure_backdoor(res.model, res.trigger, test, reference=ckpt.model)
    save_trigger(res.trigger, args.trigger, backdoor=args.backdoor, config=backdoor.config_dict(), force=args.force)
    save_checkpoint(
        res.model,
        args.out,
        architecture=ckpt.architecture,
        arguments=dict(ckpt.arguments),
        dataset=name,
        record={"backdoor": args.backdoor, "source_checkpoint": str(args.checkpoint), **res.info},
        force=args.force,
        made_by=IMPLANT_COMMAND,
    )
    summary: dict[str, Any] = {
        "command": IMPLANT_COMMAND,
        "checkpoint": args.checkpoint,
        "out": args.out,
        "trigger": args.trigger,
        "backdoor": args.backdoor,
        "dataset": name,
        "from_scratch": args.from_scratch,
        "info": res.info,
        **{k: measures[k] for k in ("clean_accuracy", "asr", "reference_asr", "psnr", "ssim") if k in measures},
        "seconds": time.perf_counter() - start,
    }
    lines = [
        f"implanted {args.backdoor} ({res.info['poisoned']} of {len(data)} training samples poisoned, "
        f"{cfg.epochs} epoch(s){', from scratch' if args.from_scratch else ''}) in {res.info['seconds']:.1f} s",
    ]
    if measures and test is not None:
        lines.append(
            f"on {len(test)} {name} test images: clean accuracy {pct(measures['clean_accuracy'])}; ASR "
            + ", ".join(
                f"trigger {i} -> {t}: {pct(a)}"
                for i, (t, a) in enumerate(zip(res.trigger.targets, measures["asr"], strict=True))
            )
            + f" (the source model: {', '.join(pct(a) for a in measures['reference_asr'])})"
        )
    lines += [f"backdoored model written to {args.out}", f"trigger written to {args.trigger}"]
    emit(args, summary, lines)
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    count = _count(args.count, "--count")
    if count is not None and not args.dataset:
        raise ConfigError("--count takes images from --dataset: name the data set too")
    trigger = load_trigger(args.trigger).trigger
    if not 0 <= args.index < len(trigger):
        raise ConfigError(
            f"--index must be a sub-trigger in [0, {len(trigger) - 1}] ({len(trigger)} in the file), got {args.index}"
        )
    test, n_data = None, 0
    if args.dataset:
        test = load_split(args.dataset, args.split, args.data_dir)
        n_data = min(DEFAULT_COUNT, len(test)) if count is None else count
        if n_data > len(test):
            raise ConfigError(
                f"--count {n_data} is more than the {len(test)} images of {args.dataset}'s {args.split} split: "
                f"choose at most {len(test)}"
            )
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
    emit(
        args,
        {"command": APPLY_COMMAND, "trigger": args.trigger, "index": args.index, "out": args.out, "images": written},
        [
            f"{len(written)} triggered image(s) (sub-trigger {args.index}, target {trigger.targets[args.index]}) "
            f"written to {args.out}"
        ],
    )
    return 0


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
    m = measure_backdoor(
        ckpt.model,
        found.trigger,
        test,
        reference=reference,
        codecs=codecs,
        qualities=qualities,
        transformations=grid,
        combined_ranges=PTBConfig().ranges(),
    )
    summary = {
        "command": "backdoor evaluate",
        "checkpoint": args.checkpoint,
        "trigger": args.trigger,
        "dataset": name,
        "samples": len(test),
        **m,
        "seconds": time.perf_counter() - start,
    }
    lines = [f"{args.checkpoint} on {len(test)} {name} test images: clean accuracy {pct(m['clean_accuracy'])}"]
    for i, target in enumerate(found.trigger.targets):
        ref = f"; reference model {pct(m['reference_asr'][i])}" if reference is not None else ""
        ssim = "n/a" if m["ssim"][i] is None else f"{m['ssim'][i]:.3f}"
        lines.append(
            f"trigger {i} -> target {target}: ASR {pct(m['asr'][i])} over {m['counted'][i]} non-target images{ref}; "
            f"PSNR {m['psnr'][i]:.1f} dB, SSIM {ssim}"
        )
    for codec, by_q in m.get("compression", {}).items():
        lines.append(f"after {codec}: " + ", ".join(f"q{q} {pct(sum(v) / len(v))}" for q, v in by_q.items()))
    for kind, by_s in m.get("physical", {}).items():
        lines.append(f"under {kind}: " + ", ".join(f"{s} {pct(sum(v) / len(v))}" for s, v in by_s.items()))
    emit(args, summary, lines)
    return 0


def add_parsers(sub: Any) -> None:
    """Adds ``backdoor`` and its sub-commands to the CLI's sub-parsers."""
    p = sub.add_parser(
        "backdoor",
        help="implant backdoors, apply triggers, measure attack success",
        description="Backdoor attacks, to learn what a poisoned model does and whether its trigger survives "
        "compression and physical conditions: implant a backdoor while training a checkpoint, stamp a trigger "
        "on images, and measure a model's attack success rate (target-class images not counted).",
    )
    bsub = p.add_subparsers(dest="backdoor_command", required=True, metavar="SUBCOMMAND")

    i = bsub.add_parser(
        "implant",
        help="train a checkpoint on a poisoned training set; writes the model and its trigger",
        description="Poison the checkpoint's training set with a backdoor and train: by default the "
        "checkpoint's model is trained further (a poisoned fine-tuning); with --from-scratch its "
        "architecture is trained anew from the backdoor's seed. Measures clean accuracy and ASR on the "
        "test split unless --no-eval.",
        epilog=options_help(BACKDOORS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    i.add_argument("checkpoint", help="checkpoint folder of the model")
    i.add_argument("--backdoor", default="badnets", choices=BACKDOORS.names(), help="backdoor (default: badnets)")
    i.add_argument("--out", required=True, help="checkpoint folder to write the backdoored model to")
    i.add_argument("--trigger", required=True, help="trigger file to write")
    i.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="backdoor option (repeatable; see below)"
    )
    i.add_argument(
        "--seed", type=int, help="seed of the trigger, the poisoned samples and the batch order, 0 to 2^63-1"
    )
    i.add_argument("--epochs", type=int, default=5, help=f"training epochs, 1 to {MAX_EPOCHS} (default 5)")
    i.add_argument("--lr", type=float, default=1e-3, help=f"Adam learning rate, in (0, {MAX_LR:g}] (default 1e-3)")
    i.add_argument("--batch-size", type=int, default=128, help=f"batch size, 1 to {MAX_BATCH_SIZE} (default 128)")
    i.add_argument("--from-scratch", action="store_true", help="train the architecture anew instead of the checkpoint")
    i.add_argument(
        "--samples",
        type=int,
        help=f"test images to measure on, at least 1 (default {DEFAULT_SAMPLES}, or all if fewer)",
    )
    i.add_argument("--dataset", help="data set (default: the checkpoint's)")
    i.add_argument("--no-eval", action="store_true", help="skip measuring accuracy and ASR")
    i.add_argument("--force", action="store_true", help="replace --out and --trigger made by an earlier implant")
    add_common(i)
    i.set_defaults(func=cmd_implant)

    a = bsub.add_parser(
        "apply",
        help="stamp a trigger on images; writes PNGs",
        description="Apply a trigger to image files (PNG, JPEG, WEBP, PPM...; converted to the trigger's "
        "channels) and/or to the first --count images of a data set split; the triggered images are "
        "written as PNG (lossless) into a new folder --out.",
    )
    a.add_argument("images", nargs="*", help="image files")
    a.add_argument("--trigger", required=True, help="trigger file")
    a.add_argument("--out", required=True, help="folder to create for the triggered images")
    a.add_argument("--index", type=int, default=0, help="which sub-trigger, from 0 (default 0)")
    a.add_argument("--dataset", help="also take images from this data set")
    a.add_argument("--split", default="test", choices=("train", "test"), help="its split (default test)")
    a.add_argument(
        "--count", type=int, help=f"how many of its images, at least 1 (default {DEFAULT_COUNT}, or all if fewer)"
    )
    a.add_argument("--force", action="store_true", help="replace an --out folder an earlier apply made")
    add_common(a, device=False)
    a.set_defaults(func=cmd_apply)

    e = bsub.add_parser(
        "evaluate",
        help="clean accuracy, ASR, PSNR/SSIM; optionally after compression and physical transformations",
        description="Measure a (possibly) backdoored checkpoint with a trigger on the test split: clean "
        "accuracy, ASR of every sub-trigger over test images whose true class is not its target, PSNR and "
        "SSIM of triggered against clean images; with --compression the ASR after each codec and quality, "
        "with --physical under held-out physical transformations.",
    )
    e.add_argument("checkpoint", help="checkpoint folder of the model")
    e.add_argument("--trigger", required=True, help="trigger file")
    e.add_argument("--reference", help="a clean checkpoint to compare with (its answers to triggered images)")
    e.add_argument("--samples", type=int, help=f"test images, at least 1 (default {DEFAULT_SAMPLES}, or all if fewer)")
    e.add_argument("--compression", action="store_true", help="also measure after lossy codecs")
    e.add_argument("--codecs", nargs="+", choices=CODECS, help="codecs, with --compression (default: all)")
    e.add_argument(
        "--qualities",
        nargs="+",
        type=int,
        help=f"qualities, each in [{QUALITIES[0]}, {QUALITIES[1]}], with --compression (default: "
        f"{' '.join(map(str, DEFAULT_QUALITIES))})",
    )
    e.add_argument(
        "--physical",
        action="store_true",
        help=f"also measure under {', '.join(TRANSFORMATIONS)} and all combined, at held-out strengths",
    )
    e.add_argument("--dataset", help="data set (default: the checkpoint's)")
    add_common(e)
    e.set_defaults(func=cmd_evaluate)


__all__ = ["add_parsers", "cmd_apply", "cmd_evaluate", "cmd_implant"]
