"""``advparams keys users|issue`` and ``advparams trace``: per-user keys whose unlocked
copies name their holder (a thin layer over :mod:`advparams.tracing`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advparams.checkpoint import load_checkpoint, read_meta
from advparams.cli._common import (
    EXIT_NO,
    EXIT_OK,
    PASSPHRASE_ENV,
    add_common,
    dataset_name,
    emit,
    load_split,
    not_an_input,
    parse_sets,
    progress_bar,
    read_key,
    read_passphrase,
)
from advparams.devices import resolve_device
from advparams.errors import ConfigError, PassphraseError, UserTableError
from advparams.files import check_output
from advparams.keys import unlock
from advparams.keys.io import save_key, user_key_replaceable_for
from advparams.registry import config_from_dict
from advparams.tracing import (
    MarkConfig,
    QueryConfig,
    TraceResult,
    issue_user_key,
    load_queries,
    owner_queries,
    read_answers,
    save_queries,
    trace_answers,
    trace_weights,
    user_plan,
)
from advparams.tracing.queries import check_limit
from advparams.tracing.queryfile import is_query_file
from advparams.tracing.roster import Roster

__all__ = ["ANSWERS_FILE", "add_parsers", "cmd_issue", "cmd_queries", "cmd_trace", "cmd_users"]

DEFAULT_POOL = 5000
"""Images the queries are made from unless ``keys queries --pool N`` says otherwise."""
ANSWERS_FILE = "answers.json"
"""The file a folder of answers holds (``trace FOLDER --queries-only``)."""


def cmd_users(args: argparse.Namespace) -> int:
    if args.action == "create":
        mark = config_from_dict(MarkConfig, parse_sets(args.set), what="mark")
        roster = Roster(mark).add(*args.users)
        roster.save(args.roster, force=args.force)
        lines = [f"roster of {len(roster.users)} users written to {args.roster} ({mark.positions} marked values each)"]
    else:
        if args.set:
            raise ConfigError("--set applies to create only: the mark's settings stay fixed once keys are issued")
        roster = Roster.load(args.roster)
        if args.action == "add":
            if not args.users:
                raise UserTableError("name at least one user to add")
            roster = roster.add(*args.users)
            roster.save(args.roster, force=True)  # updated in place, atomically
            lines = [f"added {', '.join(args.users)} to {args.roster} ({len(roster.users)} users)"]
        else:
            lines = list(roster.users) or ["(no users)"]
    emit(args, {"roster": args.roster, "users": list(roster.users)}, lines)
    return EXIT_OK


def cmd_issue(args: argparse.Namespace) -> int:
    inputs = [args.locked, args.key, args.users, args.passphrase_file, args.user_passphrase_file]
    not_an_input(args.out, *inputs)
    locked_fingerprint = str(read_meta(args.locked)["fingerprint"])
    check_output(
        args.out,
        force=args.force,
        accept=lambda p: user_key_replaceable_for(p, args.user, locked_fingerprint),
        what=f"an unsealed key of user {args.user!r} for {args.locked}",
    )
    roster = Roster.load(args.users)
    roster.require(args.user)
    owner = read_key(args)
    locked = load_checkpoint(args.locked, device=resolve_device(args.device))
    seal_with = None
    if args.seal or args.user_passphrase_file:
        seal_with = read_passphrase(
            args, confirm=True, file_option="user_passphrase_file", use_env=False, prompt="User key passphrase: "
        )
        if not seal_with:
            raise PassphraseError(
                "sealing the user's key needs a passphrase: --user-passphrase-file or a terminal prompt"
            )
    key = issue_user_key(locked.model, owner, args.user, roster.mark)
    save_key(key, args.out, passphrase=seal_with, force=args.force)
    sealed = " (sealed: send the passphrase apart from the key)" if seal_with else ""
    emit(
        args,
        {
            "checkpoint": args.locked,
            "user": args.user,
            "out": args.out,
            "marked_values": roster.mark.positions,
            "sealed": seal_with is not None,
        },
        [
            f"key for {args.user} written to {args.out}{sealed}: it unlocks {args.locked} into {args.user}'s copy "
            f"({roster.mark.positions} values marked)",
            "give it to that user only; the owner key stays with you",
        ],
    )
    return EXIT_OK


def cmd_queries(args: argparse.Namespace) -> int:
    check_output(args.out, force=args.force, accept=is_query_file)
    roster = Roster.load(args.users)
    owner = read_key(args)
    ckpt = load_checkpoint(args.locked, device=resolve_device(args.device))
    data = load_split(dataset_name(args, ckpt.meta), args.split, args.data_dir)
    ckpt.check_fits(data)
    config = config_from_dict(QueryConfig, parse_sets(args.set), what="queries")
    if args.pool is not None and not 1 <= args.pool <= len(data):
        raise ConfigError(f"--pool must be in [1, {len(data)}] (the images of that split), got {args.pool}")
    pool = data.tensors()[0][: args.pool or DEFAULT_POOL]
    qs = owner_queries(ckpt.model, owner, roster.mark, pool, config)
    save_queries(qs, args.out, force=args.force)
    emit(
        args,
        {"checkpoint": args.locked, "out": args.out, "queries": len(qs.inputs), "pool": len(pool)},
        [
            f"{len(qs.inputs)} secret queries written to {args.out} (from {len(pool)} {args.split} images)",
            "keep them to yourself: whoever knows them can tell them from ordinary inputs",
        ],
    )
    return EXIT_OK


def cmd_trace(args: argparse.Namespace) -> int:
    if not 0.0 < args.rate < 1.0:  # before any work (nan fails too)
        raise ConfigError(f"--rate is the chance of accusing an innocent user: in (0, 1), got {args.rate}")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    roster = Roster.load(args.users)
    if not roster.users:
        raise UserTableError(f"the roster {args.users} lists no users")
    if args.queries_only and not args.queries:
        raise ConfigError("--queries-only traces from the answers to secret queries: pass --queries FILE")
    if args.queries and not args.queries_only:
        raise ConfigError("--queries is for black-box tracing: add --queries-only")
    owner = read_key(args)
    device = resolve_device(args.device)
    locked = load_checkpoint(args.locked, device=device).model
    if args.queries_only:
        qs = load_queries(args.queries)
        where = Path(args.suspect)
        answered = True
        if where.is_dir() and not (where / "model.json").exists() and (where / ANSWERS_FILE).exists():
            answers: Any = read_answers(where / ANSWERS_FILE, len(qs.inputs))  # a folder of answers
        elif where.is_dir():  # a model: only its answers (to the queries that count) are used
            answers, answered = load_checkpoint(where, device=device).model, False
        else:
            answers = read_answers(where, len(qs.inputs))
        count = check_limit(args.limit, len(qs.inputs))
        bar = progress_bar(count, "gradients at the queries", quiet=args.json, unit="query")

        def on_progress(done: int) -> None:
            bar.n = done
            bar.refresh()

        try:
            result = trace_answers(
                answers, qs, locked, owner, roster.users, args.rate, limit=args.limit, progress=on_progress
            )
        finally:
            bar.close()
    else:
        answered = False
        suspect = load_checkpoint(args.suspect, device=device).model
        original = unlock(locked, owner)
        plan = user_plan(owner, original, roster.mark)
        result = trace_weights(suspect, original, plan, roster.users, args.rate)
    emit(args, _summary(args, result, answered), _lines(args, result))
    return EXIT_OK if result.accused else EXIT_NO


def _top(args: argparse.Namespace, result: TraceResult) -> list[tuple[str, float]]:
    return sorted(zip(result.users, result.scores, strict=True), key=lambda t: -t[1])[: args.show]


def _summary(args: argparse.Namespace, result: TraceResult, answered: bool) -> dict[str, Any]:
    """The ``--json`` object, in docs/cli.md's conventions: ``checkpoint`` the suspect model
    read (null when it is a file of answers, then named by ``answers``), ``key`` the owner key."""
    return {
        "checkpoint": None if answered else args.suspect,
        "answers": args.suspect if answered else None,
        "key": args.key,
        "mode": "black-box" if args.queries_only else "white-box",
        "accused": list(result.accused),
        "named": bool(result.accused),
        "threshold": result.threshold,
        "rate": result.rate,
        "users": len(result.users),
        "top": [{"user": u, "score": s} for u, s in _top(args, result)],
        "observed": result.observed,
        **({"queries": result.queries} if args.queries_only else {}),
    }


def _lines(args: argparse.Namespace, result: TraceResult) -> list[str]:
    who = ", ".join(result.accused) if result.accused else "nobody"
    how = f"from its answers to {result.queries} queries" if args.queries_only else "from its weights"
    return [
        f"{args.suspect} names {who} {how} (threshold {result.threshold:.1f} for a {args.rate:g} chance of "
        f"accusing any of the {len(result.users)} users wrongly)",
        *(f"  {u}: score {s:.1f}" for u, s in _top(args, result)),
    ]


def add_parsers(sub: Any) -> None:
    """Adds ``keys`` and ``trace`` to the CLI's sub-parsers."""
    p = sub.add_parser(
        "keys",
        help="per-user keys: a roster of users, and a key per user whose copy names its holder",
        description="Traceable keys (docs/tracing.md): lock once with the hardened scheme, list your "
        "users in a roster, and issue each one a key; each key unlocks a copy that carries that "
        "user's mark, so a leaked copy names who leaked it (advparams trace).",
    )
    ksub = p.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    u = ksub.add_parser(
        "users",
        help="the roster of users: create, add, list",
        description="create ROSTER [USER...] [--set positions=N ...]: a new roster with the mark's "
        "settings (positions, strength, colluders, false_accusation, include, exclude). "
        "add ROSTER USER...: list more users. list ROSTER.",
    )
    u.add_argument("action", choices=("create", "add", "list"))
    u.add_argument("roster", help="roster file (JSON)")
    u.add_argument("users", nargs="*", help="user ids (create, add)")
    u.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="create: a mark setting")
    u.add_argument("--force", action="store_true", help="create: replace an existing roster")
    add_common(u, device=False, data=False)
    u.set_defaults(func=cmd_users)

    i = ksub.add_parser(
        "issue",
        help="write one user's key",
        description="Write the key that unlocks LOCKED into USER's marked copy. The owner key must be "
        "a hardened lock's (its keyed shuffle hides the marks); USER must be in the roster.",
    )
    i.add_argument("locked", help="checkpoint folder of the locked model (the one every user gets)")
    i.add_argument("--key", required=True, help="the owner key written by 'advparams lock'")
    i.add_argument("--users", required=True, help="the roster (advparams keys users create)")
    i.add_argument("--user", required=True, help="the user to issue the key to")
    i.add_argument("--out", required=True, help="user key file to write (keep it between you and the user)")
    i.add_argument("--passphrase-file", help=f"passphrase of a sealed owner key (else ${PASSPHRASE_ENV})")
    i.add_argument(
        "--seal",
        action="store_true",
        help="seal the user's key with a passphrase of its own (from --user-passphrase-file or a prompt; "
        f"never ${PASSPHRASE_ENV}, which is the owner key's)",
    )
    i.add_argument(
        "--user-passphrase-file",
        help="file whose first line is the user key's passphrase (implies --seal); send the passphrase to "
        "the user apart from the key, who unlocks with 'advparams unlock --passphrase-file'",
    )
    i.add_argument(
        "--force",
        action="store_true",
        help="replace an unsealed key of the same user for the same locked model at --out (never an owner key)",
    )
    add_common(i, data=False)
    i.set_defaults(func=cmd_issue)

    q = ksub.add_parser(
        "queries",
        help="make the secret queries for black-box tracing",
        description="Write secret queries for the roster's users (docs/tracing.md): inputs on the "
        "decision boundary of the original with every mark at its expected value, made from the "
        "first --pool images of the data set. Each user's copy answers them by its own mark, so "
        "'advparams trace SUSPECT --queries FILE --queries-only' names a copy from its labels alone. "
        "--set queries=N, whitening=N, calibration=N, shrinkage=X, steps=N.",
    )
    q.add_argument("locked", help="checkpoint folder of the locked model the keys unlock")
    q.add_argument("--key", required=True, help="the owner key")
    q.add_argument("--users", required=True, help="the roster the keys were issued from")
    q.add_argument("--out", required=True, help="query file to write (keep it to yourself)")
    q.add_argument("--dataset", help="data set of the images the queries are made from (default: the checkpoint's)")
    q.add_argument("--split", default="train", choices=("train", "test"), help="its split (default: train)")
    q.add_argument(
        "--pool", type=int, help=f"images of it to use (default: {DEFAULT_POOL}, or all when the split has fewer)"
    )
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a query setting")
    q.add_argument("--passphrase-file", help=f"passphrase of a sealed owner key (else ${PASSPHRASE_ENV})")
    q.add_argument("--force", action="store_true", help="overwrite an existing query file at --out")
    add_common(q)
    q.set_defaults(func=cmd_queries)

    t = sub.add_parser(
        "trace",
        help="name the user a leaked copy came from (from its weights, or its answers to secret queries)",
        description="Score every user of the roster against the marks in SUSPECT's weights (white-box) "
        "or, with --queries FILE --queries-only, against SUSPECT's answers to the secret queries "
        "(black-box: SUSPECT is a checkpoint folder, of which only the answers are used, a JSON "
        "file of answers, a list of class indices one per query, or a folder holding such a file as "
        "answers.json), and accuse those above a threshold calibrated so that the chance of "
        "accusing any innocent user is at most --rate. Exit code: "
        "0 someone named, 3 nobody, 1 an error.",
    )
    t.add_argument(
        "suspect", help="checkpoint folder of the suspect copy, or (black-box) a JSON file or folder of its answers"
    )
    t.add_argument("--key", required=True, help="the owner key")
    t.add_argument("--locked", required=True, help="checkpoint folder of the locked model the keys unlock")
    t.add_argument("--users", required=True, help="the roster the keys were issued from")
    t.add_argument("--rate", type=float, default=1e-3, help="chance of accusing any innocent user (default: 0.001)")
    t.add_argument("--show", type=int, default=5, help="how many top scores to show (default: 5)")
    t.add_argument("--queries", help="query file written by 'advparams keys queries'")
    t.add_argument("--queries-only", action="store_true", help="trace from SUSPECT's answers to --queries only")
    t.add_argument("--limit", type=int, help="black-box: use the first N queries only")
    t.add_argument("--passphrase-file", help=f"passphrase of a sealed owner key (else ${PASSPHRASE_ENV})")
    add_common(t, data=False)
    t.set_defaults(func=cmd_trace)
