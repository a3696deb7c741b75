"""Helpers shared by the command modules: printing, progress bars, ``--set`` parsing,
passphrases, data-set choice. Parsing and printing only; the work is the library's."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advparams.data import DATASETS, ImageDataset, load_dataset
from advparams.errors import AdvParamsError, ConfigError, PassphraseError
from advparams.files import LIMITS, read_file
from advparams.keys.seal import Passphrase
from advparams.registry import option_docs
from advparams.schemes import SCHEMES

PASSPHRASE_ENV = "ADVPARAMS_PASSPHRASE"


def add_common(p: argparse.ArgumentParser, *, device: bool = True, data: bool = True) -> None:
    """The options every command has: ``--json``, ``--debug``, and ``--device``/``--data-dir``."""
    p.add_argument("--json", action="store_true", help="print one machine-readable JSON summary to stdout")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="print a traceback on errors")
    if device:
        p.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: CUDA when present)")
    if data:
        p.add_argument("--data-dir", help="folder holding the data set (required for cifar10 and gtsrb)")


def progress_bar(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)


def emit(args: argparse.Namespace, summary: dict[str, Any], lines: Sequence[str]) -> None:
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        for line in lines:
            print(line)


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def options_help(registry: Any) -> str:
    """Every registered member's ``--set`` options, with defaults and descriptions."""
    parts = []
    for name in registry.names():
        parts.append(f"options of {registry.family} {name!r} (--set KEY=VALUE):")
        parts += [f"  {o.name} (default {o.default!r}): {o.doc}" for o in option_docs(registry.get(name).Config)]
    return "\n".join(parts)


def scheme_help() -> str:
    """The lock command's epilog: every scheme's options."""
    return options_help(SCHEMES)


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
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


def read_passphrase(args: argparse.Namespace, *, confirm: bool) -> Passphrase | None:
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


def dataset_name(args: argparse.Namespace, ckpt_meta: dict[str, Any]) -> str:
    name = args.dataset or ckpt_meta.get("dataset")
    if not name:
        raise ConfigError("the checkpoint names no data set: pass --dataset")
    DATASETS.get(name)
    return name


def load_split(name: str, split: str, data_dir: str | None) -> ImageDataset:
    return load_dataset(name, split, data_dir)


def distinct_outputs(*paths: str) -> None:
    resolved = [Path(p).resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        raise ConfigError("the output paths must differ from each other and from the input")


# ----------------------------------------------------------------------------- commands


def command_line(args: argparse.Namespace) -> str:
    import shlex

    return "advparams " + " ".join(shlex.quote(a) for a in args.argv)


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise AdvParamsError("plots need matplotlib: pip install 'advparams[report]', or pass --no-plots") from None
