"""``advparams detect``: screen a checkpoint for a backdoor (a thin layer over
:mod:`advparams.detectors`)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from advparams.backdoors import load_trigger, normalise
from advparams.checkpoint import load_checkpoint
from advparams.cli._common import (
    add_common,
    dataset_name,
    emit,
    load_split,
    options_help,
    parse_sets,
    pct,
    progress_bar,
)
from advparams.detectors import DETECTORS
from advparams.detectors.measure import measure_detector
from advparams.devices import resolve_device
from advparams.errors import ConfigError
from advparams.imaging import read_image

COMMAND = "detect"


def cmd_detect(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    for name in ("samples", "clean_samples"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    options = parse_sets(args.set) | {"frr": args.frr} | ({"seed": args.seed} if args.seed is not None else {})
    options.setdefault("calibration", max(10, min(500, args.clean_samples // 2)))  # half the clean data at most
    detector = DETECTORS.build(args.detector, options)
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device=device)
    if ckpt.meta.get("locked"):
        raise ConfigError(f"{args.checkpoint} is locked: unlock it first")
    name = dataset_name(args, ckpt.meta)
    test = load_split(name, "test", args.data_dir)
    ckpt.check_fits(test)
    n = len(test)
    scored = args.samples if args.trigger else 0
    if scored + args.clean_samples > n:
        what = f"--samples {args.samples} and --clean-samples" if args.trigger else "--clean-samples"
        raise ConfigError(
            f"{what} {args.clean_samples} need {scored + args.clean_samples} {name} test images (disjoint); it has {n}"
        )
    defender = test.subset(torch.arange(n - args.clean_samples, n))
    bar = progress_bar(None, f"fit {args.detector}", quiet=args.json, unit="step")

    def on_fit(stage: str) -> None:
        bar.update(1)
        bar.set_postfix_str(stage[-60:])

    detector.fit(ckpt.model, defender, progress=on_fit)
    bar.close()
    summary: dict[str, Any] = {
        "command": COMMAND,
        "checkpoint": args.checkpoint,
        "detector": args.detector,
        "options": detector.config_dict(),
        "dataset": name,
        "clean_samples": args.clean_samples,
        "threshold": detector.threshold,
        "calibration_frr": detector.calibration_frr(),
        "fit_seconds": detector.fit_seconds,
    }
    lines = [
        f"{args.detector} fitted on the last {args.clean_samples} {name} test images in {detector.fit_seconds:.1f} s: "
        f"threshold {detector.threshold:.4g} rejects {pct(detector.calibration_frr())} of its calibration inputs"
    ]
    if detector.inspects_model:
        insp = detector.inspection
        summary["inspection"] = insp
        verdict = (
            f"BACKDOORED: label(s) {', '.join(map(str, insp['flagged']))} flagged"
            if insp["flagged"]
            else "no label flagged"
        )
        lines.append(
            f"model inspection: {verdict}; largest anomaly index {insp['max_anomaly_index']:.2f} "
            f"(label {insp['suspect']}; flagged above {detector.config.anomaly_threshold:g})"  # type: ignore[attr-defined]
        )
    if args.trigger:
        trigger = load_trigger(args.trigger).trigger
        scored = test.subset(torch.arange(args.samples))
        m = measure_detector(detector, ckpt.model, trigger, scored, frrs=(args.frr,))
        key = f"{args.frr:g}"
        summary["measured"] = {k: v for k, v in m.items() if k != "inspection"}
        lines.append(
            f"on the first {args.samples} test images with {args.trigger}: TPR {pct(m['tpr'][key])} of "
            f"{m['triggered_counted']} triggered inputs, FPR {pct(m['fpr'][key])} of {m['clean_counted']} clean ones, "
            f"AUC {m['auc']:.3f}, {1000 * m['seconds_per_image']:.2f} ms per image"
        )
        if "natural_tpr" in m:
            lines.append(
                "the paper's rule (label kept within the budget): "
                f"TPR {pct(m['natural_tpr'])}, FPR {pct(m['natural_fpr'])}"
                + (f"; mean L2 clean {m['clean_l2']:.2f}, triggered {m['triggered_l2']:.2f}" if "clean_l2" in m else "")
            )
    if args.images:
        shape = test.input_shape
        pics = []
        for path in args.images:
            img = read_image(path, shape[0])
            if tuple(img.shape) != shape:
                raise ConfigError(f"{path} is {tuple(img.shape[1:])} pixels; the model takes {shape[1:]}")
            pics.append(img)
        x = normalise(torch.stack(pics), test)
        scores = detector.score(x)
        flags = scores > detector.threshold
        summary["images"] = [
            {"path": p, "score": float(s), "flagged": bool(f)}
            for p, s, f in zip(args.images, scores, flags, strict=True)
        ]
        lines += [
            f"{'FLAGGED' if f else 'clean  '}  score {float(s):.4g}  {p}"
            for p, s, f in zip(args.images, scores, flags, strict=True)
        ]
    summary["seconds"] = time.perf_counter() - start
    emit(args, summary, lines)
    return 0


def add_parsers(sub: Any) -> None:
    """Adds ``detect`` to the CLI's sub-parsers."""
    p = sub.add_parser(
        "detect",
        help="screen a checkpoint for a backdoor: inspect the model, score images, measure against a trigger",
        description="Fit a backdoor detector on a checkpoint with the last --clean-samples test images of its "
        "data set (the defender's clean data; the threshold is calibrated there to reject --frr of clean "
        "inputs). Then: Neural Cleanse reports whether the model holds a backdoor; image files are scored and "
        "flagged; with --trigger the detector is measured on the first --samples test images, clean and "
        "triggered (TPR, FPR, AUC, time per image).",
        epilog="examples:\n"
        "  advparams detect runs/bd --detector neural-cleanse\n"
        "  advparams detect runs/bd --detector adversarial --trigger runs/bd.trigger --json\n"
        "  advparams detect runs/bd --detector strip query1.png query2.png\n\n" + options_help(DETECTORS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.intermixed = True  # images may follow the options, as in the examples
    p.add_argument("checkpoint", help="checkpoint folder of the suspect model")
    p.add_argument("images", nargs="*", help="image files to score (PNG, JPEG, WEBP, PPM...)")
    p.add_argument(
        "--detector", default="adversarial", choices=DETECTORS.names(), help="detector (default: adversarial)"
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="detector option (repeatable; see below)"
    )
    p.add_argument("--trigger", help="a trigger file: measure the detector on triggered test images")
    p.add_argument("--frr", type=float, default=0.05, help="share of clean inputs the threshold rejects (default 0.05)")
    p.add_argument("--samples", type=int, default=500, help="test images to measure on with --trigger (default 500)")
    p.add_argument(
        "--clean-samples",
        type=int,
        default=1000,
        help="the defender's clean test images (default 1000); half of them, at most 500, calibrate "
        "unless --set calibration=N",
    )
    p.add_argument("--seed", type=int, help="seed of the detector's draws")
    p.add_argument("--dataset", help="data set (default: the checkpoint's)")
    add_common(p)
    p.set_defaults(func=cmd_detect)


__all__ = ["add_parsers", "cmd_detect"]
