"""``advparams watermark embed|verify|users``: the watermark commands of the CLI (a thin
layer over :mod:`advparams.watermarks`)."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from advparams.checkpoint import load_checkpoint
from advparams.cli._common import (
    EXIT_NO,
    EXIT_OK,
    emit,
    options_help,
    parse_sets,
    pct,
    progress_bar,
    verdict_fields,
)
from advparams.cli._spec import add_verbs
from advparams.devices import resolve_device
from advparams.errors import ConfigError, UserTableError
from advparams.files import check_output
from advparams.usecases.watermarks import embed_checkpoint
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


def _watermark_help() -> str:
    return options_help(WATERMARKS)


def cmd_embed(args: argparse.Namespace) -> int:
    options = parse_sets(args.set) | ({"seed": args.seed} if args.seed is not None else {})
    bar = progress_bar(None, f"embed {args.scheme}", quiet=args.json, unit="batch")

    def on_step(step: int, steps: int) -> None:
        bar.total = steps
        bar.update(step - bar.n)

    try:
        done = embed_checkpoint(args.checkpoint, args.out, args.key, scheme=args.scheme, options=options,
                                dataset=args.dataset, data_dir=args.data_dir, device=args.device,
                                evaluate=not args.no_eval, force=args.force, progress=on_step)  # fmt: skip
    finally:
        bar.close()
    summary = {**done.summary(), "checkpoint": args.checkpoint, "out": args.out, "key": args.key}
    lines = [
        f"watermarked {args.checkpoint} with {args.scheme} ({done.num_keys} key samples) in "
        f"{done.info['seconds']:.1f} s; watermark accuracy {pct(done.watermark_accuracy)}",
        f"{done.dataset} test accuracy: before {pct(done.accuracy_before)}, watermarked {pct(done.accuracy_after)}",
        f"watermarked model written to {args.out}",
        f"watermark key written to {args.key}: keep it secret",
    ]
    emit(args, summary, lines)
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
        **verdict_fields(v, calibration, args.fpr),
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


def _users_create(args: argparse.Namespace) -> int:
    UserTable(max_errors=args.max_errors).save(args.table, force=args.force)
    emit(
        args, {"command": "watermark users create", "table": args.table}, [f"empty user table written to {args.table}"]
    )
    return 0


def _users_add(args: argparse.Namespace) -> int:
    table = UserTable.load(args.table)
    if not args.names:
        raise UserTableError("name at least one user to add")
    for n in args.names:
        table.register(n)
    table.save(args.table, force=True)  # the table is updated in place, atomically
    summary = {"command": "watermark users add", "table": args.table, "added": args.names, "users": table.users}
    emit(args, summary, [f"added {', '.join(args.names)} to {args.table} ({len(table)} users)"])
    return 0


def _users_list(args: argparse.Namespace) -> int:
    table = UserTable.load(args.table)
    summary = {"command": "watermark users list", "table": args.table, "users": table.users}
    emit(args, summary, table.users or ["(no users)"])
    return 0


def _users_issue(args: argparse.Namespace) -> int:
    table = UserTable.load(args.table)
    if not args.key or not args.user or not args.out:
        raise ConfigError("users issue needs --key, --user and --out")
    check_output(args.out, force=args.force, accept=is_watermark_key_file)
    save_watermark_key(issue(load_watermark_key(args.key), table, args.user), args.out, force=args.force)
    summary = {"command": "watermark users issue", "user": args.user, "out": args.out}
    emit(args, summary, [f"key images carrying {args.user}'s fingerprint written to {args.out}"])
    return 0


def _users_identify(args: argparse.Namespace) -> int:
    table = UserTable.load(args.table)
    if not args.key:
        raise ConfigError("users identify needs --key (the key images to read)")
    key = load_watermark_key(args.key)
    found = identify(key, table)
    user, count = Counter(a.user for a in found).most_common(1)[0]
    summary: dict[str, Any] = {
        "command": "watermark users identify",
        "key": args.key,
        "user": user,
        "images": len(found),
        "images_naming_user": count,
        "max_bit_errors": max(a.errors for a in found),
    }
    whose = f"{user}" if user else "nobody registered (unknown or forged)"
    lines = [f"{args.key}: {count} of {len(found)} key images carry the fingerprint of {whose}"]
    if args.model:
        model = load_checkpoint(args.model, device=resolve_device(args.device)).model
        summary["model_recognises"] = key.score(model)
        lines.append(f"{args.model} answers {pct(key.score(model))} of them with the watermark label")
    emit(args, summary, lines)
    return EXIT_OK if user else EXIT_NO


USER_ACTIONS = {
    "create": _users_create,
    "add": _users_add,
    "list": _users_list,
    "issue": _users_issue,
    "identify": _users_identify,
}
"""``advparams watermark users ACTION``: what each action does."""


def cmd_users(args: argparse.Namespace) -> int:
    return USER_ACTIONS[args.action](args)


def add_parsers(sub: Any) -> None:
    """Adds these commands (declared in ``watermarks.yaml`` beside this module) to the CLI's sub-parsers."""
    add_verbs(sub, globals())


__all__ = ["add_parsers", "cmd_embed", "cmd_users", "cmd_verify"]
