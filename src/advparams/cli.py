"""The ``advparams`` command line: a thin layer over the library.

Every user error (bad files, wrong keys, missing data, unknown names) ends in one line
on stderr, ``advparams: error: ...``, and exit status 1; usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from advparams import __version__
from advparams._device import resolve_device
from advparams.attacks import ATTACKS
from advparams.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from advparams.data import DATASETS, ImageDataset, load_dataset
from advparams.errors import AdvParamsError, ConfigError, PassphraseError
from advparams.files import LIMITS, check_output, read_file
from advparams.fingerprint import model_fingerprint, short
from advparams.keys import key_is_sealed, load_key, unlock
from advparams.keys.seal import Passphrase
from advparams.locked import check_locked_outputs, save_locked
from advparams.metrics import accuracy
from advparams.models import MODELS, build_model, count_parameters
from advparams.schemes import SCHEMES, LockProgress
from advparams.training import TrainConfig, TrainProgress, train

PASSPHRASE_ENV = "ADVPARAMS_PASSPHRASE"


# ----------------------------------------------------------------------------- helpers


def _progress_bar(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)


def _emit(args: argparse.Namespace, summary: dict[str, Any], lines: Sequence[str]) -> None:
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        for line in lines:
            print(line)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _config_docs(config_cls: type) -> dict[str, str]:
    """Attribute descriptions from a config dataclass's Google-style docstring."""
    doc = config_cls.__doc__ or ""
    out: dict[str, str] = {}
    current = None
    for line in doc.split("Attributes:", 1)[-1].splitlines():
        m = re.match(r"\s{4,8}(\w+): (.*)", line)
        if m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current and line.strip():
            out[current] += " " + line.strip()
    return out


def _scheme_help() -> str:
    parts = []
    for name in SCHEMES.names():
        cls = SCHEMES.get(name)
        docs = _config_docs(cls.Config)
        parts.append(f"options of scheme {name!r} (--set KEY=VALUE):")
        for f in dataclasses.fields(cls.Config):
            default = f.default if f.default is not dataclasses.MISSING else "required"
            parts.append(f"  {f.name} (default {default!r}): {docs.get(f.name, '')}")
    return "\n".join(parts)


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip().replace("-", "_")] = json.loads(v)
        except ValueError:
            out[k.strip().replace("-", "_")] = v
    return out


def _read_passphrase(args: argparse.Namespace, *, confirm: bool) -> Passphrase | None:
    """From --passphrase-file (its first line, as bytes), then $ADVPARAMS_PASSPHRASE (bytes),
    then a prompt on a terminal."""
    if getattr(args, "passphrase_file", None):
        data = read_file(
            args.passphrase_file, what="passphrase file", limit=LIMITS["passphrase"], error=PassphraseError
        )
        lines = data.splitlines()
        return lines[0] if lines else b""
    env = os.environb.get(PASSPHRASE_ENV.encode()) if os.name != "nt" else os.environ.get(PASSPHRASE_ENV, "").encode()
    if env:
        return env
    if sys.stdin.isatty():
        first = getpass.getpass("Key passphrase: ")
        if confirm and getpass.getpass("Repeat passphrase: ") != first:
            raise PassphraseError("the passphrases do not match")
        return first
    return None


def _dataset_name(args: argparse.Namespace, ckpt_meta: dict[str, Any]) -> str:
    name = args.dataset or ckpt_meta.get("dataset")
    if not name:
        raise ConfigError("the checkpoint names no data set: pass --dataset")
    DATASETS.get(name)
    return name


def _load_split(name: str, split: str, data_dir: str | None) -> ImageDataset:
    return load_dataset(name, split, data_dir)


def _check_fits(ckpt: Checkpoint, data: ImageDataset) -> None:
    c, h, _ = data.input_shape
    args = ckpt.arguments
    if (
        args.get("in_channels", c) != c
        or args.get("input_size", h) != h
        or args.get("num_classes", data.num_classes) != data.num_classes
    ):
        raise ConfigError(
            f"the model ({ckpt.architecture} {args}) does not fit data set {data.name} "
            f"({c}x{h}x{h}, {data.num_classes} classes)"
        )


def _distinct_outputs(*paths: str) -> None:
    resolved = [Path(p).resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        raise ConfigError("the output paths must differ from each other and from the input")


# ----------------------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> int:
    summary = {
        "models": MODELS.names(),
        "datasets": DATASETS.names(),
        "schemes": SCHEMES.names(),
        "attacks": ATTACKS.names(),
    }
    lines = [
        "models:   " + ", ".join(summary["models"]),
        "schemes:  " + ", ".join(summary["schemes"]),
        "attacks:  " + ", ".join(summary["attacks"]),
        "datasets:",
    ]
    lines += [f"  {n:14s} {DATASETS.get(n).description}" for n in summary["datasets"]]
    _emit(args, summary, lines)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out = args.out or f"runs/{args.model}-{args.dataset}-seed{args.seed}"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    check_output(out, force=args.force, made_by="train")
    device = resolve_device(args.device)
    spec = DATASETS.get(args.dataset)
    MODELS.get(args.model)
    train_data = _load_split(args.dataset, "train", args.data_dir)
    test_data = _load_split(args.dataset, "test", args.data_dir)
    if args.train_samples:
        g = torch.Generator().manual_seed(args.seed)
        train_data = train_data.subset(torch.randperm(len(train_data), generator=g)[: args.train_samples])
    options = {**spec.model_options, **_parse_sets(args.set)}
    model = build_model(args.model, options, seed=args.seed).to(device)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer)
    bar = _progress_bar(cfg.epochs * -(-len(train_data) // cfg.batch_size), f"train {args.model}")

    def on_step(p: TrainProgress) -> None:
        bar.update(1)
        bar.set_postfix(epoch=f"{p.epoch}/{p.epochs}", loss=f"{p.loss:.3f}")
        if p.record is not None:
            bar.write(
                f"epoch {p.epoch}/{p.epochs}: loss {p.record.loss:.4f}, train {_pct(p.record.train_accuracy)}, "
                f"test {_pct(p.record.eval_accuracy)} ({p.record.seconds:.1f} s)",
                file=sys.stderr,
            )

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(args.seed)  # dropout; the CLI is the harness, so it seeds here
        result = train(
            model,
            train_data,
            cfg,
            generator=torch.Generator().manual_seed(args.seed),
            eval_data=test_data,
            progress=on_step,
        )
    bar.close()
    test_acc = result.history[-1].eval_accuracy if result.history else None
    record = {
        "train": dataclasses.asdict(cfg),
        "seed": args.seed,
        "train_samples": len(train_data),
        "test_accuracy": test_acc,
        "history": [dataclasses.asdict(h) for h in result.history],
        "device": str(device),
    }
    save_checkpoint(
        result.model,
        out,
        architecture=args.model,
        arguments=options,
        dataset=args.dataset,
        record=record,
        force=args.force,
        made_by="train",
    )
    summary = {
        "command": "train",
        "checkpoint": out,
        "model": args.model,
        "dataset": args.dataset,
        "accuracy": test_acc,
        "params_total": count_parameters(result.model),
        "fingerprint": model_fingerprint(result.model),
        "seconds": time.perf_counter() - start,
    }
    _emit(
        args,
        summary,
        [f"trained {args.model} on {args.dataset}: test accuracy {_pct(test_acc)}", f"checkpoint written to {out}"],
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device=device)
    name = _dataset_name(args, ckpt.meta)
    data = _load_split(name, args.split, args.data_dir)
    _check_fits(ckpt, data)
    acc = accuracy(ckpt.model, data)
    summary = {
        "command": "evaluate",
        "checkpoint": args.checkpoint,
        "dataset": name,
        "split": args.split,
        "accuracy": acc,
        "num_samples": len(data),
        "locked": bool(ckpt.meta.get("locked")),
        "fingerprint": ckpt.meta["fingerprint"],
        "seconds": time.perf_counter() - start,
    }
    state = " (locked)" if summary["locked"] else ""
    _emit(args, summary, [f"{args.checkpoint}{state}: {name} {args.split} accuracy {_pct(acc)} on {len(data)} samples"])
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    check_locked_outputs(args.out, args.key, force=args.force, source=args.checkpoint)
    scheme = SCHEMES.build(args.scheme, _parse_sets(args.set) | ({"seed": args.seed} if args.seed is not None else {}))
    passphrase = None
    if args.seal or args.passphrase_file:
        passphrase = _read_passphrase(args, confirm=True)
        if not passphrase:
            raise PassphraseError(
                f"sealing needs a passphrase: --passphrase-file, ${PASSPHRASE_ENV} or a terminal prompt"
            )
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device=device)
    if ckpt.meta.get("locked"):
        raise ConfigError(f"{args.checkpoint} is already locked")
    name = _dataset_name(args, ckpt.meta)
    lock_data = _load_split(name, "train", args.data_dir)
    _check_fits(ckpt, lock_data)
    test_data = None if args.no_eval else _load_split(name, "test", args.data_dir)
    cfg = scheme.config
    bar = _progress_bar(getattr(cfg, "max_params", 0), f"lock ({args.scheme})")

    def on_round(p: LockProgress) -> None:
        bar.n = p.params_changed
        bar.set_postfix(acc=_pct(p.lock_accuracy), target=_pct(p.target_accuracy))
        bar.refresh()

    result = scheme.lock(ckpt.model, lock_data, progress=on_round)
    bar.close()
    rep = result.report
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
        "command": "lock",
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
        "lock_seconds": rep.seconds,
        "seconds": time.perf_counter() - start,
    }
    _emit(
        args,
        summary,
        [
            f"locked {args.checkpoint} with {args.scheme}: {rep.params_changed} of {rep.params_total} "
            f"parameters changed ({rep.proportion_percent:.6f}%) in {rep.seconds:.2f} s (stopped: {rep.stopped})",
            f"{name} test accuracy: before {_pct(acc_before)}, locked {_pct(acc_locked)}",
            f"locked model written to {args.out}",
            f"key written to {args.key}{' (sealed)' if passphrase else ''}: keep it secret",
        ],
    )
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    _distinct_outputs(args.locked, args.out)
    check_output(args.out, force=args.force, made_by="unlock")
    passphrase = None
    if key_is_sealed(args.key):
        passphrase = _read_passphrase(args, confirm=False)
        if passphrase is None:
            raise PassphraseError(f"key file {args.key} is sealed: pass --passphrase-file or set ${PASSPHRASE_ENV}")
    key = load_key(args.key, passphrase=passphrase)
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.locked, device=device)
    restored = unlock(ckpt.model, key)  # checks both fingerprints
    acc_locked = acc_unlocked = None
    name = args.dataset or ckpt.meta.get("dataset")
    if not args.no_eval and name:
        data = _load_split(_dataset_name(args, ckpt.meta), "test", args.data_dir)
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
        "command": "unlock",
        "locked": args.locked,
        "key": args.key,
        "out": args.out,
        "params_restored": key.num_changed,
        "exact": True,
        "fingerprint": key.original_fingerprint,
        "accuracy_locked": acc_locked,
        "accuracy_unlocked": acc_unlocked,
        "dataset": name,
        "seconds": time.perf_counter() - start,
    }
    _emit(
        args,
        summary,
        [
            f"unlocked {args.locked}: {key.num_changed} parameters restored; weights equal the original "
            f"({short(key.original_fingerprint)})",
            f"test accuracy: locked {_pct(acc_locked)}, unlocked {_pct(acc_unlocked)}",
            f"restored model written to {args.out}",
        ],
    )
    return 0


def cmd_key_info(args: argparse.Namespace) -> int:
    sealed = key_is_sealed(args.key)
    passphrase = _read_passphrase(args, confirm=False) if sealed else None
    if sealed and passphrase is None:
        raise PassphraseError(f"key file {args.key} is sealed: pass --passphrase-file or set ${PASSPHRASE_ENV}")
    key = load_key(args.key, passphrase=passphrase)
    summary = {
        "command": "key-info",
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
    _emit(args, summary, lines)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Train (or reuse) LeNet-5 on Fashion-MNIST, lock, unlock, and show the numbers."""
    start = time.perf_counter()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    ckpt_path, locked_path, key_path, restored_path = (
        work / "lenet-fashion-mnist",
        work / "locked",
        work / "key.safetensors",
        work / "restored",
    )
    test_data = load_dataset("fashion-mnist", "test", args.data_dir)
    train_data = load_dataset("fashion-mnist", "train", args.data_dir)
    ckpt = None
    if (ckpt_path / "model.json").exists():
        try:
            ckpt = load_checkpoint(ckpt_path, device=device)
            print(f"reusing the cached checkpoint {ckpt_path}")
        except AdvParamsError as exc:
            print(f"cached checkpoint unusable ({exc}); training again")
    if ckpt is None:
        ns = argparse.Namespace(
            model="lenet",
            dataset="fashion-mnist",
            data_dir=args.data_dir,
            epochs=args.epochs,
            batch_size=128,
            lr=1e-3,
            optimizer="adam",
            seed=0,
            device=args.device,
            out=str(ckpt_path),
            force=True,
            json=False,
            set=[],
            train_samples=None,
        )
        cmd_train(ns)
        ckpt = load_checkpoint(ckpt_path, device=device)
    scheme = SCHEMES.build("advparams", {})
    result = scheme.lock(ckpt.model, train_data)
    # The demo owns its work folder, so it replaces its own earlier outputs there.
    save_locked(
        result.model,
        result.key,
        locked_path,
        key_path,
        architecture=ckpt.architecture,
        arguments=ckpt.arguments,
        dataset="fashion-mnist",
        force=True,
    )
    locked = load_checkpoint(locked_path, device=device)
    restored = unlock(locked.model, load_key(key_path))
    save_checkpoint(
        restored,
        restored_path,
        architecture=ckpt.architecture,
        arguments=ckpt.arguments,
        dataset="fashion-mnist",
        force=True,
        made_by="unlock",
    )
    orig_state, rest_state = ckpt.model.state_dict(), restored.state_dict()
    exact = list(orig_state) == list(rest_state) and all(torch.equal(orig_state[k], rest_state[k]) for k in orig_state)
    acc = {
        name: accuracy(m, test_data)
        for name, m in (("original", ckpt.model), ("locked", locked.model), ("unlocked", restored))
    }
    rep = result.report
    print()
    print("AdvParams demo: LeNet-5 on Fashion-MNIST (test set, 10,000 images)")
    print(f"  accuracy original  {_pct(acc['original'])}")
    print(f"  accuracy locked    {_pct(acc['locked'])}   (chance: 10.00%)")
    print(f"  accuracy unlocked  {_pct(acc['unlocked'])}")
    print(
        f"  parameters changed {rep.params_changed} of {rep.params_total} ({rep.proportion_percent:.4f}%), "
        f"lock took {rep.seconds:.2f} s"
    )
    print(f"  unlocked == original, every tensor bit-exact: {'yes' if exact else 'NO'}")
    print(
        f"  files in {work}: lenet-fashion-mnist/, locked/, key.safetensors, restored/ "
        f"({time.perf_counter() - start:.0f} s in all)"
    )
    return 0 if exact else 1


def _command_line(args: argparse.Namespace) -> str:
    import shlex

    return "advparams " + " ".join(shlex.quote(a) for a in args.argv)


def cmd_evaluate_protection(args: argparse.Namespace) -> int:
    from advparams.evaluation import evaluate_protection, load_config
    from advparams.reports import write_report

    overrides: dict[str, Any] = {}
    if args.seeds:
        overrides["seeds"] = args.seeds
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    config = load_config(args.config, overrides)
    out = Path(args.out or f"runs/eval/{config.name}")
    if not args.no_plots:
        _require_matplotlib()
    start = time.perf_counter()
    bar = _progress_bar(0, f"evaluate {config.name}")

    def on_progress(p: Any) -> None:
        bar.total = p.total
        bar.update(1)
        bar.set_postfix_str(("skip " if p.skipped else "") + p.label[-60:])

    rows = evaluate_protection(config, out, device=args.device, force=args.force, progress=on_progress)
    bar.close()
    report = write_report(out, args.report_dir, command=_command_line(args), plots=not args.no_plots)
    seconds = time.perf_counter() - start
    locks = [r for r in rows if r.kind == "lock"]
    summary = {
        "run": str(out),
        "report": str(report),
        "rows": len(rows),
        "seconds": seconds,
        "locked_accuracy": {f"{r.scheme}/seed{r.seed}": r.accuracy for r in locks},
    }
    lines = [f"evaluation {config.name}: {len(rows)} rows in {out} ({seconds:.0f} s this session)", f"report: {report}"]
    _emit(args, summary, lines)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from advparams.reports import write_report

    if not args.no_plots:
        _require_matplotlib()
    report = write_report(args.run, args.report_dir, command=args.made_with, plots=not args.no_plots)
    _emit(args, {"report": str(report)}, [f"report: {report}"])
    return 0


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise AdvParamsError("plots need matplotlib: pip install 'advparams[report]', or pass --no-plots") from None


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="advparams",
        description="Lock trained PyTorch models with AdvParams and unlock them with their secret key.",
        epilog="Run 'advparams COMMAND --help' for a command's options. Errors print one line and exit 1.",
    )
    parser.add_argument("--version", action="version", version=f"advparams {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="on an error, print the Python traceback too (for bug reports)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, *, device: bool = True, data: bool = True) -> None:
        p.add_argument("--json", action="store_true", help="print one machine-readable JSON summary to stdout")
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="print a traceback on errors")
        if device:
            p.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: CUDA when present)")
        if data:
            p.add_argument("--data-dir", help="folder holding the data set (required for cifar10 and gtsrb)")

    p = sub.add_parser("list", help="list registered models, data sets and schemes")
    common(p, device=False, data=False)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "train",
        help="train a registered model and save a checkpoint",
        description="Train a registered model on a data set; writes a checkpoint folder "
        "(model.safetensors + model.json).",
    )
    p.add_argument("--model", required=True, choices=MODELS.names(), help="architecture")
    p.add_argument("--dataset", required=True, choices=DATASETS.names(), help="data set")
    p.add_argument("--out", help="checkpoint folder to write (default: runs/MODEL-DATASET-seedSEED)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs (default: 10)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="optimiser (default: adam)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling (default: 0)")
    p.add_argument("--train-samples", type=int, help="train on a random subset of this many samples")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra model option, e.g. --set width=16 (repeatable)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy of a checkpoint on a data set")
    p.add_argument("checkpoint", help="checkpoint folder")
    p.add_argument("--dataset", choices=DATASETS.names(), help="data set (default: the checkpoint's)")
    p.add_argument("--split", choices=("train", "test"), default="test", help="split (default: test)")
    common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "lock",
        help="lock a checkpoint; writes the locked model and its secret key",
        description="Lock a trained checkpoint: a few parameters are adversarially perturbed so "
        "the model is useless without the key. Lock samples come from the data set's "
        "training split; accuracies are measured on its test split.",
        epilog=_scheme_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint folder of the trained model")
    p.add_argument("--out", required=True, help="checkpoint folder to write the locked model to")
    p.add_argument("--key", required=True, help="key file to write (safetensors; keep it secret)")
    p.add_argument("--scheme", default="advparams", choices=SCHEMES.names(), help="locking scheme (default: advparams)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="scheme option, e.g. --set max_params=30 (repeatable; see below)",
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
    p.add_argument("--force", action="store_true", help="overwrite existing --out and --key")
    common(p)
    p.set_defaults(func=cmd_lock)

    p = sub.add_parser(
        "unlock",
        help="restore the original model from a locked one and its key",
        description="Restore the original model bit-exactly. The key's fingerprints must match "
        "the locked model, and the result is checked against the original's.",
    )
    p.add_argument("locked", help="checkpoint folder of the locked model")
    p.add_argument("--key", required=True, help="the key file written by 'advparams lock'")
    p.add_argument("--out", required=True, help="checkpoint folder to write the restored model to")
    p.add_argument("--passphrase-file", help=f"passphrase of a sealed key (else ${PASSPHRASE_ENV} or a prompt)")
    p.add_argument(
        "--dataset", choices=DATASETS.names(), help="data set for the accuracy check (default: the checkpoint's)"
    )
    p.add_argument("--no-eval", action="store_true", help="skip measuring test accuracy")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    common(p)
    p.set_defaults(func=cmd_unlock)

    p = sub.add_parser("key-info", help="describe a key file (what it changes, which model it fits)")
    p.add_argument("key", help="key file")
    p.add_argument("--passphrase-file", help=f"passphrase of a sealed key (else ${PASSPHRASE_ENV} or a prompt)")
    common(p, device=False, data=False)
    p.set_defaults(func=cmd_key_info)

    p = sub.add_parser(
        "evaluate-protection",
        help="train -> lock with every scheme -> every attack, over seeds; JSON lines, report, plots",
        description="Run the evaluation a YAML config describes (see configs/ and docs/evaluation.md): "
        "train or load one model per seed, lock it with every scheme, run every attack setting, and "
        "write OUT/results.jsonl (one row per scheme, attack, setting and seed), OUT/config.yaml "
        "(resolved), and a Markdown report with PNG plots. Re-running the same command skips the rows "
        "already done, so an interrupted run goes on where it stopped.",
    )
    p.add_argument("--config", required=True, help="YAML file describing the evaluation")
    p.add_argument("--out", help="run folder (default: runs/eval/NAME); resumed if it holds the same config")
    p.add_argument("--report-dir", help="write report.md, plots/ and copies of the rows here (default: --out)")
    p.add_argument("--seeds", type=int, nargs="+", help="replace the config's seeds")
    p.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")
    p.add_argument(
        "--force",
        action="store_true",
        help="discard a run folder of a different config (a folder that is not a run folder is never replaced)",
    )
    common(p)
    p.set_defaults(func=cmd_evaluate_protection)

    p = sub.add_parser(
        "report",
        help="rebuild the report of an evaluation run from its rows",
        description="Rebuild report.md and plots/ of an evaluate-protection run folder from its "
        "results.jsonl alone (nothing is re-run).",
    )
    p.add_argument("run", help="run folder of evaluate-protection")
    p.add_argument("--report-dir", help="write the report here (default: the run folder)")
    p.add_argument("--made-with", help="the command line to print in the report")
    p.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")
    common(p, device=False, data=False)
    p.set_defaults(func=cmd_report)

    from advparams.cli_watermark import add_watermark_parser

    add_watermark_parser(sub, common)

    p = sub.add_parser("demo", help="train (or reuse) LeNet-5 on Fashion-MNIST, lock, unlock, show the numbers")
    p.add_argument("--workdir", default="runs/demo", help="folder for the demo's files (default: runs/demo)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs when no cached checkpoint (default: 10)")
    p.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: CUDA when present)")
    p.add_argument("--data-dir", help="folder holding Fashion-MNIST (default: found automatically)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``advparams`` command."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="advparams: %(levelname)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("advparams: interrupted; nothing was half-written", file=sys.stderr)
        return 130
    except BaseException as exc:  # noqa: BLE001  (the CLI's one promise: one error line, exit 1)
        if isinstance(exc, SystemExit):
            raise
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"advparams: error: {error_line(exc)}", file=sys.stderr)
        return 1


def error_line(exc: BaseException) -> str:
    """The one line the CLI prints for ``exc``."""
    if isinstance(exc, AdvParamsError):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}"
    elif isinstance(exc, MemoryError):
        text = "out of memory (the input asks for more than this machine has)"
    elif isinstance(exc, RecursionError):
        text = "the input is nested too deeply"
    else:
        text = f"unexpected {type(exc).__name__}: {exc} (a bug: please report it with --debug's traceback)"
    return " ".join(text.split())[:2000]


if __name__ == "__main__":
    sys.exit(main())
