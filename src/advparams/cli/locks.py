"""``advparams lock | unlock | key-info``: the active protection commands."""

from __future__ import annotations

import argparse
from typing import Any

from advparams.cli._common import (
    PASSPHRASE_ENV,
    distinct_outputs,
    emit,
    member_summaries,
    options_help,
    parse_sets,
    pct,
    progress_bar,
    read_key,
    read_passphrase,
)
from advparams.cli._spec import add_verbs
from advparams.errors import PassphraseError
from advparams.files import check_output
from advparams.fingerprint import short
from advparams.keys import key_is_sealed
from advparams.locked import check_locked_outputs
from advparams.schemes import SCHEMES, LockProgress
from advparams.usecases.locks import DEFAULT_SCHEME, Locked, lock_checkpoint, unlock_checkpoint


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


def _lock_passphrase(args: argparse.Namespace) -> Any:
    """The passphrase to seal the key with (``None``: not sealed)."""
    if not (args.seal or args.passphrase_file):
        return None
    passphrase = read_passphrase(args, confirm=True)
    if not passphrase:
        raise PassphraseError(f"sealing needs a passphrase: --passphrase-file, ${PASSPHRASE_ENV} or a terminal prompt")
    return passphrase


def _lock_lines(done: Locked) -> list[str]:
    """What ``advparams lock`` prints."""
    rep = done.report
    lm = done.perplexity is not None
    accuracy = "next-token accuracy" if lm else "accuracy"
    lines = [
        f"locked {done.checkpoint} with {done.scheme}: {rep.params_changed} of {rep.params_total} "
        f"parameters changed ({rep.proportion_percent:.6f}%) in {rep.seconds:.2f} s (stopped: {rep.stopped})",
        f"{done.dataset} test {accuracy}: before {pct(done.accuracy_before)}, locked {pct(done.accuracy_locked)}",
    ]
    if done.perplexity is not None:
        before, locked, bar = done.perplexity
        lines.append(
            f"{done.dataset} test perplexity: before {before:.2f}, locked {locked:.2f} (a unigram model of the "
            f"corpus: {bar:.2f})"
        )

    def level(v: float | None) -> str:  # the lock's level; a language model's, 1 / perplexity, told as perplexity
        if not lm or v is None:
            return pct(v)
        return f"perplexity {1 / v:.2f}" if v > 0 else "perplexity inf"

    if rep.holdout_samples:
        lines.append(
            f"lock samples: {level(rep.lock_accuracy_after)} locked; {level(rep.holdout_accuracy_after)} on the "
            f"{rep.holdout_samples} the search did not see (target {level(rep.target_accuracy)}); "
            f"{rep.forward_passes:.1f} forward and {rep.backward_passes:.1f} backward passes"
        )
    if rep.check_samples:
        lines.append(
            f"unseen data: {level(rep.check_accuracy)} on {rep.check_samples} check samples the search never "
            f"saw; the {100 * (rep.check_level or 0):.4g} % {'lower' if lm else 'upper'} bound "
            f"{level(rep.check_bound)} "
            f"{'certifies' if rep.certified else 'does not certify'} the target {level(rep.target_accuracy)}"
            + (f" (search {rep.check_tries})" if rep.check_tries > 1 else "")
        )
    if done.problem:
        lines.append(f"PARTIAL LOCK (accepted with --allow-partial): {done.problem}")
    return [*lines, f"locked model written to {done.out}",
            f"key written to {done.key}{' (sealed)' if done.sealed else ''}: keep it secret"]  # fmt: skip


def cmd_lock(args: argparse.Namespace) -> int:
    scheme = args.scheme or DEFAULT_SCHEME
    options = parse_sets(args.set) | ({"seed": args.seed} if args.seed is not None else {})
    check_locked_outputs(args.out, args.key, force=args.force, source=args.checkpoint)
    SCHEMES.build(scheme, options)  # a wrong option fails before a passphrase is asked for
    passphrase = _lock_passphrase(args)
    bar = LockBar(scheme, quiet=args.json)
    try:
        done = lock_checkpoint(args.checkpoint, args.out, args.key, scheme=scheme, options=options,
                               dataset=args.dataset, data=args.data, data_dir=args.data_dir, device=args.device,
                               evaluate=not args.no_eval, allow_partial=args.allow_partial, passphrase=passphrase,
                               force=args.force, progress=bar.update)  # fmt: skip
    finally:
        bar.close()
    summary = done.summary()
    summary["checkpoint"], summary["out"], summary["key"] = args.checkpoint, args.out, args.key
    emit(args, summary, _lock_lines(done))
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    distinct_outputs(args.locked, args.out)
    check_output(args.out, force=args.force, made_by="unlock")
    key = read_key(args)
    done = unlock_checkpoint(args.locked, key, args.out, evaluate=args.eval, dataset=args.dataset, data=args.data,
                             data_dir=args.data_dir, device=args.device, force=args.force)  # fmt: skip
    summary = {
        "checkpoint": args.locked,
        "key": args.key,
        "out": args.out,
        "params_restored": done.params_restored,
        "exact": True,
        "fingerprint": done.fingerprint,
        "user": done.user,
        "accuracy_locked": done.accuracy_locked,
        "accuracy_unlocked": done.accuracy_unlocked,
        "dataset": done.dataset,
        "seconds": done.seconds,
    }
    whose = f"{done.user}'s copy" if done.user else "the original"
    lines = [f"unlocked {args.locked}: {done.params_restored} parameters restored; weights equal {whose} "
             f"({short(done.fingerprint)})"]  # fmt: skip
    if args.eval:
        lines.append(f"{done.dataset} test accuracy: locked {pct(done.accuracy_locked)}, "
                     f"unlocked {pct(done.accuracy_unlocked)}")  # fmt: skip
    emit(args, summary, [*lines, f"restored model written to {args.out}"])
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
    """Adds these commands (declared in ``locks.yaml`` beside this module) to the CLI's sub-parsers."""
    add_verbs(sub, globals())
