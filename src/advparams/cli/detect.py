"""``advparams detect``: screen a checkpoint for a backdoor (a thin layer over
:mod:`advparams.detectors`)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from advparams.cli._common import (
    emit,
    parse_sets,
    pct,
    progress_bar,
)
from advparams.cli._spec import add_verbs
from advparams.errors import ConfigError
from advparams.usecases.detect import Screened, screen_checkpoint

COMMAND = "detect"


def _detect_lines(args: argparse.Namespace, found: Screened) -> list[str]:
    """What ``advparams detect`` prints."""
    lines = [
        f"{args.detector} fitted on the last {args.clean_samples} {found.dataset} test images in "
        f"{found.fit_seconds:.1f} s: threshold {found.threshold:.4g} rejects {pct(found.calibration_frr)} of its "
        f"calibration inputs"
    ]
    if (insp := found.inspection) is not None:
        flagged = ", ".join(map(str, insp["flagged"]))
        verdict = f"BACKDOORED: label(s) {flagged} flagged" if insp["flagged"] else "no label flagged"
        lines.append(
            f"model inspection: {verdict}; largest anomaly index {insp['max_anomaly_index']:.2f} "
            f"(label {insp['suspect']}; flagged above {found.anomaly_threshold:g})"
        )
    if (m := found.measured) is not None:
        key = f"{args.frr:g}"
        lines.append(
            f"on the first {args.samples} test images with {args.trigger}: TPR {pct(m['tpr'][key])} of "
            f"{m['triggered_counted']} triggered inputs, FPR {pct(m['fpr'][key])} of {m['clean_counted']} clean ones, "
            f"AUC {m['auc']:.3f}, {1000 * m['seconds_per_image']:.2f} ms per image"
        )
        if "natural_tpr" in m:
            l2 = f"; mean L2 clean {m['clean_l2']:.2f}, triggered {m['triggered_l2']:.2f}" if "clean_l2" in m else ""
            lines.append(
                f"the paper's rule (label kept within the budget): TPR {pct(m['natural_tpr'])}, "
                f"FPR {pct(m['natural_fpr'])}{l2}"
            )
    flags = [f"{'FLAGGED' if r['flagged'] else 'clean  '}  score {r['score']:.4g}  {r['path']}" for r in found.images]
    return lines + flags


def cmd_detect(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    for name in ("samples", "clean_samples"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    options = parse_sets(args.set) | ({"seed": args.seed} if args.seed is not None else {})
    options.setdefault("calibration", max(10, min(500, args.clean_samples // 2)))  # half the clean data at most
    bar = progress_bar(None, f"fit {args.detector}", quiet=args.json, unit="step")

    def on_fit(stage: str) -> None:
        bar.update(1)
        bar.set_postfix_str(stage[-60:])

    try:
        found = screen_checkpoint(args.checkpoint, detector=args.detector, options=options, frr=args.frr,
                                  clean_samples=args.clean_samples, trigger=args.trigger, samples=args.samples,
                                  images=args.images, dataset=args.dataset, data_dir=args.data_dir,
                                  device=args.device, progress=on_fit)  # fmt: skip
    finally:
        bar.close()
    keys = ("options", "dataset", "clean_samples", "threshold", "calibration_frr", "fit_seconds")
    summary: dict[str, Any] = {"command": COMMAND, "checkpoint": args.checkpoint, "detector": args.detector,
                               **{k: getattr(found, k) for k in keys}}  # fmt: skip
    for k in ("inspection", "measured"):
        if getattr(found, k) is not None:
            summary[k] = getattr(found, k)
    if args.images:
        summary["images"] = list(found.images)
    summary["seconds"] = time.perf_counter() - start
    emit(args, summary, _detect_lines(args, found))
    return 0


def add_parsers(sub: Any) -> None:
    """Adds these commands (declared in ``detect.yaml`` beside this module) to the CLI's sub-parsers."""
    add_verbs(sub, globals())


__all__ = ["add_parsers", "cmd_detect"]
