"""``advparams fingerprint extract | verify``: ownership fingerprints of a checkpoint, and their
verification on a suspect (a thin layer over :mod:`advparams.fingerprints`)."""

from __future__ import annotations

import argparse
import inspect
import time
from collections.abc import Iterator
from typing import Any

from torch import nn

from advparams.checkpoint import load_checkpoint, read_description
from advparams.cli._common import (
    EXIT_NO,
    EXIT_OK,
    dataset_name,
    distinct_outputs,
    emit,
    parse_sets,
    verdict_fields,
)
from advparams.cli._spec import add_verbs
from advparams.data import DATASETS
from advparams.devices import resolve_device
from advparams.errors import AdvParamsError, ConfigError
from advparams.files import check_output
from advparams.fingerprints import FINGERPRINTS, calibrate_on, load_fingerprint, save_fingerprint, scheme_of
from advparams.fingerprints.base import check_fpr
from advparams.fingerprints.fingerprintfile import is_fingerprint_file
from advparams.models import MODELS
from advparams.usecases.data import checkpoint_data


def input_shape(meta: dict[str, Any]) -> tuple[int, int, int] | None:
    """What a checkpoint's model takes, ``(C, H, W)``, from its ``model.json`` alone: the
    ``in_channels`` and ``input_size`` arguments, else their defaults in the architecture's
    factory, else its data set's shape; None when none of them says."""
    args = meta.get("arguments", {})
    try:
        defaults = {
            k: p.default
            for k, p in inspect.signature(MODELS.get(meta["architecture"])).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
    except (TypeError, ValueError, AdvParamsError):
        defaults = {}
    c, side = args.get("in_channels", defaults.get("in_channels")), args.get("input_size", defaults.get("input_size"))
    if (c is None or side is None) and meta.get("dataset") in DATASETS:
        spec = DATASETS.get(meta["dataset"])
        c, side = spec.in_channels, spec.input_size
    if isinstance(c, int) and isinstance(side, int) and not isinstance(c, bool) and not isinstance(side, bool):
        return c, side, side
    return None


def cmd_extract(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    distinct_outputs(args.checkpoint, args.out)
    check_output(args.out, force=args.force, accept=is_fingerprint_file)
    options = parse_sets(args.set) | ({"seed": args.seed} if args.seed is not None else {})
    scheme = FINGERPRINTS.build(args.scheme, options)
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device=device)
    if ckpt.meta.get("locked"):
        raise ConfigError(f"{args.checkpoint} is locked: take the fingerprint of the unlocked model")
    name, data = checkpoint_data(ckpt, "train", dataset=dataset_name(args, ckpt.meta), data_dir=args.data_dir)
    fp = scheme.extract(ckpt.model, data)
    self_score = scheme.score(ckpt.model, fp)
    save_fingerprint(fp, args.out, force=args.force)
    summary = {
        "command": "fingerprint extract",
        "checkpoint": args.checkpoint,
        "out": args.out,
        "scheme": args.scheme,
        "options": dict(fp.config),
        "dataset": name,
        "probes": len(fp),
        "self_score": self_score,
        "seconds": time.perf_counter() - start,
    }
    emit(
        args,
        summary,
        [
            f"{args.scheme} fingerprint of {args.checkpoint}: {len(fp)} probes from the {name} training images, "
            f"taken in {summary['seconds']:.1f} s (the model scores {self_score:.3f} against itself)",
            f"fingerprint written to {args.out}: keep it secret (its probes are what a thief would tune against)",
        ],
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    check_fpr(args.fpr, what="--fpr")
    if len(args.null) < 2:
        raise ConfigError("--null needs at least two null models (5 or more advised)")
    device = resolve_device(args.device)
    fp = load_fingerprint(args.fingerprint)
    scheme = scheme_of(fp)
    for path in (args.suspect, *args.null):  # every model checked before any is run on the probes
        fp.check_takes(input_shape(read_description(path)), model=f"the model in {path}")

    def nulls() -> Iterator[nn.Module]:  # one at a time: only one null model is held at once
        for path in args.null:
            yield load_checkpoint(path, device=device).model

    calibration = calibrate_on(nulls(), fp, args.fpr)
    v = scheme.verify(load_checkpoint(args.suspect, device=device).model, fp, calibration)
    summary = {
        "checkpoint": args.suspect,
        "fingerprint": args.fingerprint,
        "scheme": fp.scheme,
        **verdict_fields(v, calibration, args.fpr),
    }
    verdict = "is a copy of the fingerprinted model" if v.decision else "is not shown to be a copy"
    emit(
        args,
        summary,
        [
            f"{args.suspect} {verdict}: {fp.scheme} score {v.score:.3f} (threshold {v.threshold:.3f} for a "
            f"false-positive rate of {args.fpr:g}; p = {v.p_value:.3g})",
            f"null models scored {', '.join(f'{s:.3f}' for s in calibration.null_scores)}",
        ],
    )
    return EXIT_OK if v.decision else EXIT_NO


def add_parsers(sub: Any) -> None:
    """Adds these commands (declared in ``fingerprints.yaml`` beside this module) to the CLI's sub-parsers."""
    add_verbs(sub, globals())


__all__ = ["add_parsers", "cmd_extract", "cmd_verify", "input_shape"]
