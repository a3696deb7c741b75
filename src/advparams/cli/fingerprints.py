"""``advparams fingerprint extract | verify``: ownership fingerprints of a checkpoint, and their
verification on a suspect (a thin layer over :mod:`advparams.fingerprints`)."""

from __future__ import annotations

import argparse
import inspect
import time
from collections.abc import Iterator
from typing import Any

from torch import nn

from advparams.checkpoint import load_checkpoint, read_meta
from advparams.cli._common import (
    EXIT_NO,
    EXIT_OK,
    add_common,
    dataset_name,
    distinct_outputs,
    emit,
    load_split,
    options_help,
    parse_sets,
)
from advparams.data import DATASETS
from advparams.devices import resolve_device
from advparams.errors import AdvParamsError, ConfigError
from advparams.files import check_output
from advparams.fingerprints import FINGERPRINTS, calibrate_on, load_fingerprint, save_fingerprint, scheme_of
from advparams.fingerprints.base import check_fpr
from advparams.fingerprints.fingerprintfile import is_fingerprint_file
from advparams.models import MODELS


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
    name = dataset_name(args, ckpt.meta)
    data = load_split(name, "train", args.data_dir)
    ckpt.check_fits(data)
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
        fp.check_takes(input_shape(read_meta(path)), model=f"the model in {path}")

    def nulls() -> Iterator[nn.Module]:  # one at a time: only one null model is held at once
        for path in args.null:
            yield load_checkpoint(path, device=device).model

    calibration = calibrate_on(nulls(), fp, args.fpr)
    v = scheme.verify(load_checkpoint(args.suspect, device=device).model, fp, calibration)
    summary = {
        "checkpoint": args.suspect,
        "fingerprint": args.fingerprint,
        "scheme": fp.scheme,
        "score": v.score,
        "threshold": v.threshold,
        "p_value": v.p_value,
        "verified": v.decision,
        "fpr": args.fpr,
        "null_scores": list(calibration.null_scores),
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
    """Adds ``fingerprint`` and its sub-commands to the CLI's sub-parsers."""
    p = sub.add_parser(
        "fingerprint",
        help="ownership fingerprints that need no change to the model: extract, verify",
        description="Passive protection without changing the model: take a fingerprint of a checkpoint "
        "(InFIP: DTD relevance maps of secret probes; IPGuard: points near its decision boundary), and "
        "later verify whether a suspect is a copy, at a threshold set from null models for --fpr.",
    )
    fsub = p.add_subparsers(dest="fingerprint_command", required=True, metavar="SUBCOMMAND")
    e = fsub.add_parser(
        "extract",
        help="take a fingerprint of a checkpoint; writes a fingerprint file (keep it secret)",
        description="Draw probes from the data set's training split and record what the model makes of them. "
        "The model is not changed.",
        epilog="examples:\n"
        "  advparams fingerprint extract runs/model --out owner.fingerprint\n"
        "  advparams fingerprint extract runs/model --scheme ipguard --set k=2 --out owner.ipguard\n\n"
        + options_help(FINGERPRINTS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("checkpoint", help="checkpoint folder of the owner's model")
    e.add_argument("--scheme", default="infip", choices=FINGERPRINTS.names(), help="fingerprint (default: infip)")
    e.add_argument("--out", required=True, help="fingerprint file to write")
    e.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="fingerprint option (repeatable; see below)"
    )
    e.add_argument("--seed", type=int, help="seed of the choice of probes")
    e.add_argument("--dataset", help="data set (default: the checkpoint's)")
    e.add_argument("--force", action="store_true", help="overwrite an existing fingerprint file at --out")
    add_common(e)
    e.set_defaults(func=cmd_extract)

    v = fsub.add_parser(
        "verify",
        help="is a suspect model a copy of the fingerprinted one?",
        description="Score the suspect against the fingerprint. The threshold is set from null models "
        "(independently trained models of the task) for --fpr: a normal fit to their scores, never at or "
        "below the highest of them. Exit code: 0 verified (a copy), 3 not verified, 1 an error.",
        epilog="example:\n  advparams fingerprint verify suspect/ --fingerprint owner.fingerprint "
        "--null null1/ null2/ null3/ null4/ null5/ --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("suspect", help="checkpoint folder of the suspect model")
    v.add_argument("--fingerprint", required=True, help="the fingerprint file")
    v.add_argument(
        "--null", required=True, nargs="+", help="checkpoint folders of null models (2 at least, 5 or more advised)"
    )
    v.add_argument(
        "--fpr", type=float, default=0.01, help="false-positive rate of the threshold, in [1e-12, 0.5) (default: 0.01)"
    )
    add_common(v, data=False)
    v.set_defaults(func=cmd_verify)


__all__ = ["add_parsers", "cmd_extract", "cmd_verify", "input_shape"]
