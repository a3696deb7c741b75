"""``advparams watermark embed|verify|users``: the watermark commands of the CLI (a thin
layer over :mod:`advparams.watermarks`)."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any

from advparams.checkpoint import load_checkpoint, save_checkpoint
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
    pct,
    progress_bar,
)
from advparams.devices import resolve_device
from advparams.errors import ConfigError, UserTableError
from advparams.files import check_output
from advparams.metrics import accuracy
from advparams.watermarks import (
    WATERMARKS,
    UserTable,
    calibrate_on,
    identify,
    is_watermark_key_file,
    issue,
    load_watermark_key,
    save_watermark_key,
    verify,
)

EMBED_COMMAND = "watermark embed"


def _watermark_help() -> str:
    return options_help(WATERMARKS)


def cmd_embed(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    distinct_outputs(args.checkpoint, args.out, args.key)
    check_output(args.out, force=args.force, made_by=EMBED_COMMAND)
    check_output(args.key, force=args.force, accept=is_watermark_key_file)
    options = parse_sets(args.set) | ({"seed": args.seed} if args.seed is not None else {})
    wm = WATERMARKS.build(args.scheme, options)
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device=device)
    if ckpt.meta.get("locked"):
        raise ConfigError(f"{args.checkpoint} is locked: unlock it first, watermark, then lock again")
    name = dataset_name(args, ckpt.meta)
    data = load_split(name, "train", args.data_dir)
    ckpt.check_fits(data)
    test = None if args.no_eval else load_split(name, "test", args.data_dir)
    bar = progress_bar(None, f"embed {args.scheme}", quiet=args.json, unit="batch")

    def on_step(step: int, steps: int) -> None:
        bar.total = steps
        bar.update(step - bar.n)

    res = wm.embed(ckpt.model, data, progress=on_step)
    bar.close()
    arguments = dict(ckpt.arguments)
    if type(wm).extra_class:
        arguments["num_classes"] = res.key.num_classes
    before = after = None
    if test is not None:
        before, after = accuracy(ckpt.model, test), accuracy(res.model, test)
    score = res.key.score(res.model)
    save_watermark_key(res.key, args.key, force=args.force)
    save_checkpoint(
        res.model,
        args.out,
        architecture=ckpt.architecture,
        arguments=arguments,
        dataset=name,
        record={"watermark": args.scheme, "source_checkpoint": str(args.checkpoint), "test_accuracy": after},
        force=args.force,
        made_by=EMBED_COMMAND,
    )
    summary = {
        "checkpoint": args.checkpoint,
        "out": args.out,
        "key": args.key,
        "scheme": args.scheme,
        "dataset": name,
        "device": str(device),
        "accuracy_before": before,
        "accuracy_after": after,
        "watermark_accuracy": score,
        "num_keys": len(res.key),
        "info": res.info,
        "seconds": time.perf_counter() - start,
    }
    emit(
        args,
        summary,
        [
            f"watermarked {args.checkpoint} with {args.scheme} ({len(res.key)} key samples) in "
            f"{res.info['seconds']:.1f} s; watermark accuracy {pct(score)}",
            f"{name} test accuracy: before {pct(before)}, watermarked {pct(after)}",
            f"watermarked model written to {args.out}",
            f"watermark key written to {args.key}: keep it secret",
        ],
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    key = load_watermark_key(args.key)
    suspect = load_checkpoint(args.suspect, device=device).model
    nulls = [load_checkpoint(p, device=device).model for p in args.null]
    calibration = calibrate_on(nulls, key, args.fpr)
    v = verify(suspect, key, calibration)
    summary = {
        "checkpoint": args.suspect,
        "key": args.key,
        "score": v.score,
        "threshold": v.threshold,
        "p_value": v.p_value,
        "verified": v.decision,
        "fpr": args.fpr,
        "null_scores": list(calibration.null_scores),
    }
    verdict = "carries the watermark" if v.decision else "does not carry the watermark"
    emit(
        args,
        summary,
        [
            f"{args.suspect} {verdict}: {pct(v.score)} of {len(key)} key samples answered "
            f"(threshold {pct(v.threshold)} for a false-positive rate of {args.fpr:g}; p = {v.p_value:.3g})",
            f"null models scored {', '.join(pct(s) for s in calibration.null_scores)}",
        ],
    )
    return EXIT_OK if v.decision else EXIT_NO


def cmd_users(args: argparse.Namespace) -> int:
    action = args.action
    if action == "create":
        table = UserTable(max_errors=args.max_errors)
        table.save(args.table, force=args.force)
        emit(
            args,
            {"command": "watermark users create", "table": args.table},
            [f"empty user table written to {args.table}"],
        )
        return 0
    table = UserTable.load(args.table)
    if action == "add":
        if not args.names:
            raise UserTableError("name at least one user to add")
        for n in args.names:
            table.register(n)
        table.save(args.table, force=True)  # the table is updated in place, atomically
        emit(
            args,
            {"command": "watermark users add", "table": args.table, "added": args.names, "users": table.users},
            [f"added {', '.join(args.names)} to {args.table} ({len(table)} users)"],
        )
        return 0
    if action == "list":
        emit(
            args,
            {"command": "watermark users list", "table": args.table, "users": table.users},
            table.users or ["(no users)"],
        )
        return 0
    if action == "issue":
        if not args.key or not args.user or not args.out:
            raise ConfigError("users issue needs --key, --user and --out")
        check_output(args.out, force=args.force, accept=is_watermark_key_file)
        user_key = issue(load_watermark_key(args.key), table, args.user)
        save_watermark_key(user_key, args.out, force=args.force)
        emit(
            args,
            {"command": "watermark users issue", "user": args.user, "out": args.out},
            [f"key images carrying {args.user}'s fingerprint written to {args.out}"],
        )
        return 0
    # identify
    if not args.key:
        raise ConfigError("users identify needs --key (the key images to read)")
    key = load_watermark_key(args.key)
    found = identify(key, table)
    votes = Counter(a.user for a in found)
    user, count = votes.most_common(1)[0]
    summary: dict[str, Any] = {
        "command": "watermark users identify",
        "key": args.key,
        "user": user,
        "images": len(found),
        "images_naming_user": count,
        "max_bit_errors": max(a.errors for a in found),
    }
    lines = [
        f"{args.key}: {count} of {len(found)} key images carry the fingerprint of "
        + (f"{user}" if user else "nobody registered (unknown or forged)")
    ]
    if args.model:
        model = load_checkpoint(args.model, device=resolve_device(args.device)).model
        summary["model_recognises"] = key.score(model)
        lines.append(f"{args.model} answers {pct(key.score(model))} of them with the watermark label")
    emit(args, summary, lines)
    return EXIT_OK if user else EXIT_NO


def add_parsers(sub: Any) -> None:
    """Adds ``watermark`` and its sub-commands to the CLI's sub-parsers."""
    p = sub.add_parser(
        "watermark",
        help="embed, verify watermarks; manage users' fingerprints",
        description="Passive protection: embed a watermark in a checkpoint, verify a suspect model "
        "against null models at a stated false-positive rate, and manage the users whose "
        "fingerprints the additional-class scheme hides in its key images.",
    )
    wsub = p.add_subparsers(dest="watermark_command", required=True, metavar="SUBCOMMAND")

    e = wsub.add_parser(
        "embed",
        help="watermark a checkpoint; writes the model and the watermark key",
        description="Train a watermark into a copy of a checkpoint (fine-tuning with the key samples "
        "in every batch). Key samples come from the data set's training split.",
        epilog=_watermark_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("checkpoint", help="checkpoint folder of the trained model")
    e.add_argument(
        "--scheme", default="additional-class", choices=WATERMARKS.names(), help="watermark (default: additional-class)"
    )
    e.add_argument("--out", required=True, help="checkpoint folder to write the watermarked model to")
    e.add_argument("--key", required=True, help="watermark key file to write (keep it secret)")
    e.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="watermark option (repeatable; see below)"
    )
    e.add_argument("--seed", type=int, help="seed of the key samples and training order")
    e.add_argument("--dataset", help="data set (default: the checkpoint's)")
    e.add_argument("--no-eval", action="store_true", help="skip measuring test accuracy")
    e.add_argument("--force", action="store_true", help="overwrite existing --out and --key")
    add_common(e)
    e.set_defaults(func=cmd_embed)

    v = wsub.add_parser(
        "verify",
        help="does a suspect model carry the watermark?",
        description="Query the suspect with the key samples. The threshold is set from null models "
        "(independently trained models of the task that never saw the watermark) for --fpr: "
        "the smallest share of the key a null model reaches with at most that probability. "
        "Exit code: 0 the watermark is there, 3 it is not, 1 an error.",
    )
    v.add_argument("suspect", help="checkpoint folder of the suspect model")
    v.add_argument("--key", required=True, help="the watermark key file")
    v.add_argument("--null", required=True, nargs="+", help="checkpoint folders of null models (5 or more advised)")
    v.add_argument("--fpr", type=float, default=1e-6, help="false-positive rate of the threshold (default: 1e-6)")
    add_common(v, data=False)
    v.set_defaults(func=cmd_verify)

    u = wsub.add_parser(
        "users",
        help="user table: create, add, list, issue key images, identify",
        description="Exit code of identify: 0 a registered user named, 3 nobody, 1 an error. "
        "create TABLE: a new empty table. add TABLE NAME...: register users (random 256-bit "
        "fingerprints). list TABLE. issue TABLE --key K --user U --out F: U's copy of the key images, "
        "their fingerprint in the LSB plane. identify TABLE --key F [--model M]: whose fingerprint the "
        "key images carry (exit 3 when nobody's), and whether model M recognises them.",
    )
    u.add_argument("action", choices=("create", "add", "list", "issue", "identify"))
    u.add_argument("table", help="user table file (JSON)")
    u.add_argument("names", nargs="*", help="user names (add)")
    u.add_argument("--key", help="watermark key file (issue: the owner's; identify: the images to read)")
    u.add_argument("--user", help="the user to issue key images to")
    u.add_argument("--out", help="file for the issued key images")
    u.add_argument("--model", help="identify: also check that this checkpoint recognises the images")
    u.add_argument("--max-errors", type=int, default=16, help="create: bit errors accepted as a match (default 16)")
    u.add_argument("--force", action="store_true", help="overwrite an existing table (create) or --out (issue)")
    add_common(u, data=False)
    u.set_defaults(func=cmd_users)


__all__ = ["add_parsers", "cmd_embed", "cmd_users", "cmd_verify"]
