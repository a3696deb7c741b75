"""``advparams lock | unlock | key-info``: the active protection commands."""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

from advparams.checkpoint import load_checkpoint, save_checkpoint
from advparams.cli._common import (
    PASSPHRASE_ENV,
    add_common,
    dataset_name,
    distinct_outputs,
    emit,
    load_split,
    member_summaries,
    options_help,
    parse_sets,
    pct,
    progress_bar,
    read_key,
    read_passphrase,
)
from advparams.data import DATASETS
from advparams.devices import resolve_device
from advparams.errors import ConfigError, LockIncompleteError, PassphraseError
from advparams.files import check_output
from advparams.fingerprint import short
from advparams.keys import key_is_sealed, unlock
from advparams.locked import check_locked_outputs, save_locked
from advparams.metrics import accuracy
from advparams.schemes import SCHEMES, LockProgress

DEFAULT_SCHEME = "advparams"


class LockBar:
    """The lock's progress on a terminal: how far the lock-sample accuracy has come down
    towards the target, in points (what the lock waits for), with the changed values."""

    def __init__(self, scheme: str, *, quiet: bool) -> None:
        self.bar = progress_bar(None, f"lock ({scheme})", quiet=quiet, unit="pt")

    def update(self, p: LockProgress) -> None:
        if p.start_accuracy is not None and self.bar.total is None:
            self.bar.total = max(round(100 * (p.start_accuracy - p.target_accuracy), 1), 0.1)
        if self.bar.total is not None and p.start_accuracy is not None:
            self.bar.n = min(max(round(100 * (p.start_accuracy - p.lock_accuracy), 1), 0.0), self.bar.total)
        self.bar.set_postfix_str(
            f"accuracy {pct(p.lock_accuracy)} -> target {pct(p.target_accuracy)}, {p.params_changed} values changed"
        )
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def scheme_list() -> str:
    """The lock command's epilog: the schemes in one line each."""
    lines = ["schemes (advparams lock --scheme NAME --help shows a scheme's options):"]
    lines += [f"  {name:11s} {text}" for name, text in member_summaries(SCHEMES)]
    return "\n".join(lines)


class SchemeHelp(argparse.Action):
    """``--help``: with ``--scheme NAME`` given before it, the scheme's options too."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None) -> None:
        name = getattr(namespace, "scheme", None)
        if name is not None:
            parser.epilog = options_help(SCHEMES, only=name)
        parser.print_help()
        parser.exit()


def cmd_lock(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    args.scheme = args.scheme or DEFAULT_SCHEME
    check_locked_outputs(args.out, args.key, force=args.force, source=args.checkpoint)
    scheme = SCHEMES.build(args.scheme, parse_sets(args.set) | ({"seed": args.seed} if args.seed is not None else {}))
    passphrase = None
    if args.seal or args.passphrase_file:
        passphrase = read_passphrase(args, confirm=True)
        if not passphrase:
            raise PassphraseError(
                f"sealing needs a passphrase: --passphrase-file, ${PASSPHRASE_ENV} or a terminal prompt"
            )
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device=device)
    if ckpt.meta.get("locked"):
        raise ConfigError(f"{args.checkpoint} is already locked")
    name = dataset_name(args, ckpt.meta)
    lock_data = load_split(name, "train", args.data_dir)
    ckpt.check_fits(lock_data)
    test_data = None if args.no_eval else load_split(name, "test", args.data_dir)
    bar = LockBar(args.scheme, quiet=args.json)
    result = scheme.lock(ckpt.model, lock_data, progress=bar.update)
    bar.close()
    rep = result.report
    problem = rep.problem()
    if problem and not args.allow_partial:
        if rep.lock_accuracy_before <= rep.target_accuracy:
            advice = "check the checkpoint and --dataset"
        elif rep.certified is False and rep.lock_accuracy_after <= rep.target_accuracy:
            advice = "give the search more lock samples (--set num_samples=N) or the check more (--set check_samples=N)"
        else:
            advice = "raise the budget (--set max_params=N) or lower the target"
        raise LockIncompleteError(f"{problem}; nothing was written: {advice}, or accept it with --allow-partial")
    acc_before = acc_locked = None
    if test_data is not None:
        acc_before, acc_locked = accuracy(ckpt.model, test_data), accuracy(result.model, test_data)
    record = {
        "lock": dataclasses.asdict(rep),
        "original_fingerprint": result.key.original_fingerprint,
        "source_checkpoint": str(args.checkpoint),
        "test_accuracy": acc_locked,
    }
    save_locked(
        result.model,
        result.key,
        args.out,
        args.key,
        architecture=ckpt.architecture,
        arguments=ckpt.arguments,
        dataset=name,
        record=record,
        passphrase=passphrase,
        force=args.force,
    )
    summary = {
        "checkpoint": args.checkpoint,
        "out": args.out,
        "key": args.key,
        "sealed": passphrase is not None,
        "scheme": args.scheme,
        "dataset": name,
        "device": str(device),
        "accuracy_before": acc_before,
        "accuracy_locked": acc_locked,
        "lock_accuracy_before": rep.lock_accuracy_before,
        "lock_accuracy_after": rep.lock_accuracy_after,
        "target_accuracy": rep.target_accuracy,
        "params_changed": rep.params_changed,
        "params_total": rep.params_total,
        "proportion_percent": rep.proportion_percent,
        "stopped": rep.stopped,
        "target_met": rep.target_met,
        "partial": problem is not None,
        "lock_rounds": rep.rounds,
        "lock_forward_passes": rep.forward_passes,
        "lock_backward_passes": rep.backward_passes,
        "holdout_accuracy_after": rep.holdout_accuracy_after,
        "check_samples": rep.check_samples,
        "check_accuracy": rep.check_accuracy,
        "check_bound": rep.check_bound,
        "check_level": rep.check_level,
        "check_tries": rep.check_tries,
        "certified": rep.certified,
        "lock_seconds": rep.seconds,
        "seconds": time.perf_counter() - start,
    }
    emit(
        args,
        summary,
        [
            f"locked {args.checkpoint} with {args.scheme}: {rep.params_changed} of {rep.params_total} "
            f"parameters changed ({rep.proportion_percent:.6f}%) in {rep.seconds:.2f} s (stopped: {rep.stopped})",
            f"{name} test accuracy: before {pct(acc_before)}, locked {pct(acc_locked)}",
            *(
                [
                    f"lock samples: {pct(rep.lock_accuracy_after)} locked; {pct(rep.holdout_accuracy_after)} on the "
                    f"{rep.holdout_samples} the search did not see (target {pct(rep.target_accuracy)}); "
                    f"{rep.forward_passes:.1f} forward and {rep.backward_passes:.1f} backward passes"
                ]
                if rep.holdout_samples
                else []
            ),
            *(
                [
                    f"unseen data: {pct(rep.check_accuracy)} on {rep.check_samples} check samples the search never "
                    f"saw; the {100 * (rep.check_level or 0):.4g} % upper bound {pct(rep.check_bound)} "
                    f"{'certifies' if rep.certified else 'does not certify'} the target {pct(rep.target_accuracy)}"
                    + (f" (search {rep.check_tries})" if rep.check_tries > 1 else "")
                ]
                if rep.check_samples
                else []
            ),
            *([f"PARTIAL LOCK (accepted with --allow-partial): {problem}"] if problem else []),
            f"locked model written to {args.out}",
            f"key written to {args.key}{' (sealed)' if passphrase else ''}: keep it secret",
        ],
    )
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    distinct_outputs(args.locked, args.out)
    check_output(args.out, force=args.force, made_by="unlock")
    key = read_key(args)
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.locked, device=device)
    restored = unlock(ckpt.model, key)  # checks both fingerprints
    acc_locked = acc_unlocked = None
    name = args.dataset or ckpt.meta.get("dataset")
    if args.eval:
        name = dataset_name(args, ckpt.meta)
        data = load_split(name, "test", args.data_dir)
        ckpt.check_fits(data)
        acc_locked, acc_unlocked = accuracy(ckpt.model, data), accuracy(restored, data)
    record = {"unlocked_from": str(args.locked), "key_created": key.created}
    save_checkpoint(
        restored,
        args.out,
        architecture=ckpt.architecture,
        arguments=ckpt.arguments,
        dataset=ckpt.dataset,
        locked=False,
        record=record,
        force=args.force,
        made_by="unlock",
    )
    summary = {
        "checkpoint": args.locked,
        "key": args.key,
        "out": args.out,
        "params_restored": key.num_changed,
        "exact": True,
        "fingerprint": key.original_fingerprint,
        "user": key.info.get("user"),
        "accuracy_locked": acc_locked,
        "accuracy_unlocked": acc_unlocked,
        "dataset": name,
        "seconds": time.perf_counter() - start,
    }
    emit(
        args,
        summary,
        [
            f"unlocked {args.locked}: {key.num_changed} parameters restored; "
            + (
                f"weights equal {user}'s copy ({short(key.original_fingerprint)})"
                if (user := key.info.get("user"))
                else f"weights equal the original ({short(key.original_fingerprint)})"
            ),
            *([f"{name} test accuracy: locked {pct(acc_locked)}, unlocked {pct(acc_unlocked)}"] if args.eval else []),
            f"restored model written to {args.out}",
        ],
    )
    return 0


def cmd_key_info(args: argparse.Namespace) -> int:
    sealed = key_is_sealed(args.key)
    key = read_key(args)
    summary = {
        "key": args.key,
        "sealed": sealed,
        "scheme": key.scheme,
        "params_changed": key.num_changed,
        "tensors": key.counts(),
        "original_fingerprint": key.original_fingerprint,
        "locked_fingerprint": key.locked_fingerprint,
        "created": key.created,
        "insecure": key.insecure or None,
        "config": dict(key.config),
        "info": dict(key.info),
    }
    lines = [
        f"{args.key}: {key.scheme} key{' (sealed)' if sealed else ''}, created {key.created}",
        f"  changes {key.num_changed} values in {len(key.counts())} tensors"
        + (f" ({len(key.shuffles)} by keyed shuffle)" if key.shuffles else ""),
        f"  unlocks {key.locked_fingerprint}",
        f"  restores {key.original_fingerprint}",
    ]
    if key.insecure:
        lines.append(f"  INSECURE: {key.insecure}")
    lines += [f"  {name}: {n}" for name, n in summary["tensors"].items()]
    emit(args, summary, lines)
    return 0


def add_parsers(sub: Any) -> None:
    """Registers these commands on the top-level parser's subparsers."""
    p = sub.add_parser(
        "lock",
        help="lock a checkpoint; writes the locked model and its secret key",
        description="Lock a trained checkpoint so that the model is useless without the key. "
        "Lock samples come from the data set's training split; accuracies are measured on its "
        "test split. A lock that misses its target accuracy writes nothing and exits 4 unless "
        "--allow-partial is given.",
        epilog=scheme_list(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    p.add_argument(
        "-h",
        "--help",
        action=SchemeHelp,
        help="show this help; with --scheme NAME before it, that scheme's options too",
    )
    p.add_argument("checkpoint", help="checkpoint folder of the trained model")
    p.add_argument("--out", required=True, help="checkpoint folder to write the locked model to")
    p.add_argument("--key", required=True, help="key file to write (safetensors; keep it secret)")
    p.add_argument(
        "--scheme",
        default=None,
        choices=SCHEMES.names(),
        help="locking scheme (default: advparams; see 'which lock' in the README)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="scheme option, e.g. --set max_params=30; lists as JSON, e.g. --set 'include=[\"fc*\"]' "
        "(repeatable; 'advparams lock --scheme NAME --help' lists them)",
    )
    p.add_argument("--seed", type=int, help="seed of the lock-sample choice (scheme option 'seed')")
    p.add_argument("--dataset", choices=DATASETS.names(), help="data set (default: the checkpoint's)")
    p.add_argument(
        "--seal",
        action="store_true",
        help=f"seal the key with a passphrase (from --passphrase-file, ${PASSPHRASE_ENV} or a prompt)",
    )
    p.add_argument("--passphrase-file", help="file whose first line is the passphrase (implies --seal)")
    p.add_argument("--no-eval", action="store_true", help="skip measuring test accuracy")
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="write a lock that missed its target accuracy (reported as partial) instead of exiting 4",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an earlier lock's --out and the key it was written with (never another model's key)",
    )
    add_common(p)
    p.set_defaults(func=cmd_lock)

    p = sub.add_parser(
        "unlock",
        help="restore the original model from a locked one and its key",
        description="Restore the original model bit-exactly. The key's fingerprints must match "
        "the locked model, and the result is checked against the original's. Needs only the "
        "locked model and the key (no data set) unless --eval is given.",
    )
    p.add_argument("locked", help="checkpoint folder of the locked model")
    p.add_argument("--key", required=True, help="the key file written by 'advparams lock'")
    p.add_argument("--out", required=True, help="checkpoint folder to write the restored model to")
    p.add_argument("--passphrase-file", help=f"passphrase of a sealed key (else ${PASSPHRASE_ENV} or a prompt)")
    p.add_argument(
        "--eval",
        action="store_true",
        help="also measure test accuracy of the locked and the unlocked model (needs the data set; "
        "without it, unlock needs only the model and the key)",
    )
    p.add_argument("--dataset", choices=DATASETS.names(), help="data set for --eval (default: the checkpoint's)")
    p.add_argument("--no-eval", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    add_common(p)
    p.set_defaults(func=cmd_unlock)

    p = sub.add_parser("key-info", help="describe a key file (what it changes, which model it fits)")
    p.add_argument("key", help="key file")
    p.add_argument("--passphrase-file", help=f"passphrase of a sealed key (else ${PASSPHRASE_ENV} or a prompt)")
    add_common(p, device=False, data=False)
    p.set_defaults(func=cmd_key_info)
