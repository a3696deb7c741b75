"""``advparams keys users|issue`` and ``advparams trace``: per-user keys whose unlocked
copies name their holder (a thin layer over :mod:`advparams.tracing`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advparams.checkpoint import load_checkpoint, recorded_fingerprint
from advparams.cli._common import (
    EXIT_NO,
    EXIT_OK,
    PASSPHRASE_ENV,
    dataset_name,
    emit,
    load_split,
    not_an_input,
    parse_sets,
    progress_bar,
    read_key,
    read_passphrase,
)
from advparams.cli._spec import add_verbs
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

__all__ = ["ANSWERS_FILE", "PASSPHRASE_ENV", "add_parsers", "cmd_issue", "cmd_queries", "cmd_trace", "cmd_users"]

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


def _user_passphrase(args: argparse.Namespace) -> Any:
    """The passphrase to seal the user's key with (``None``: not sealed); never the owner
    key's environment variable."""
    if not (args.seal or args.user_passphrase_file):
        return None
    seal_with = read_passphrase(
        args, confirm=True, file_option="user_passphrase_file", use_env=False, prompt="User key passphrase: "
    )
    if not seal_with:
        raise PassphraseError("sealing the user's key needs a passphrase: --user-passphrase-file or a terminal prompt")
    return seal_with


def cmd_issue(args: argparse.Namespace) -> int:
    inputs = [args.locked, args.key, args.users, args.passphrase_file, args.user_passphrase_file]
    not_an_input(args.out, *inputs)
    locked_fingerprint = recorded_fingerprint(args.locked)
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
    seal_with = _user_passphrase(args)
    key = issue_user_key(locked.model, owner, args.user, roster.mark)
    save_key(key, args.out, passphrase=seal_with, force=args.force)
    sealed = " (sealed: send the passphrase apart from the key)" if seal_with else ""
    summary = {"checkpoint": args.locked, "user": args.user, "out": args.out,
               "marked_values": roster.mark.positions, "sealed": seal_with is not None}  # fmt: skip
    lines = [
        f"key for {args.user} written to {args.out}{sealed}: it unlocks {args.locked} into {args.user}'s copy "
        f"({roster.mark.positions} values marked)",
        "give it to that user only; the owner key stays with you",
    ]
    emit(args, summary, lines)
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


def _trace_black_box(args: argparse.Namespace, locked: Any, owner: Any, roster: Any, device: Any) -> tuple[Any, bool]:
    """The suspect traced from its answers to the secret queries (a file or folder of
    answers, or a model asked only the queries that count); and whether answers were given."""
    qs = load_queries(args.queries)
    where = Path(args.suspect)
    answered = True
    if where.is_dir() and not (where / "model.json").exists() and (where / ANSWERS_FILE).exists():
        answers: Any = read_answers(where / ANSWERS_FILE, len(qs.inputs))  # a folder of answers
    elif where.is_dir():  # a model: only its answers (to the queries that count) are used
        answers, answered = load_checkpoint(where, device=device).model, False
    else:
        answers = read_answers(where, len(qs.inputs))
    bar = progress_bar(check_limit(args.limit, len(qs.inputs)), "gradients at the queries", quiet=args.json,
                       unit="query")  # fmt: skip

    def on_progress(done: int) -> None:
        bar.n = done
        bar.refresh()

    try:
        result = trace_answers(answers, qs, locked, owner, roster.users, args.rate, limit=args.limit,
                               progress=on_progress)  # fmt: skip
    finally:
        bar.close()
    return result, answered


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
        result, answered = _trace_black_box(args, locked, owner, roster, device)
    else:
        answered = False
        suspect = load_checkpoint(args.suspect, device=device).model
        original = unlock(locked, owner)
        result = trace_weights(suspect, original, user_plan(owner, original, roster.mark), roster.users, args.rate)
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
    """Adds these commands (declared in ``tracing.yaml`` beside this module) to the CLI's sub-parsers."""
    add_verbs(sub, globals())
