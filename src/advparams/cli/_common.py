"""Helpers shared by the command modules: printing, progress bars, ``--set`` parsing,
passphrases, data-set choice. Parsing and printing only; the work is the library's."""

from __future__ import annotations

import argparse
import getpass
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from advparams.data import ImageDataset, load_dataset
from advparams.errors import AdvParamsError, ConfigError, PassphraseError
from advparams.files import LIMITS, read_file
from advparams.keys import Key, key_is_sealed, load_key
from advparams.keys.seal import Passphrase
from advparams.registry import option_docs
from advparams.training import TrainProgress
from advparams.usecases.models import checkpoint_dataset, distinct_paths

PASSPHRASE_ENV = "ADVPARAMS_PASSPHRASE"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO = 3
"""A yes/no command's "no": not verified, nobody identified, a backdoor found."""
EXIT_PARTIAL = 4
"""A lock that missed its target (and ``--allow-partial`` was not given)."""
JSON_SCHEMA = 1
"""Version of the ``--json`` objects' conventions (``docs/cli.md``)."""


class Parser(argparse.ArgumentParser):
    """argparse's parser; with ``--json`` on the line a usage error is also one JSON
    object on stdout (exit 2 as always)."""

    json_errors = False
    intermixed = False
    """Set on a command's parser whose positional list may stand on both sides of its
    options (``detect CKPT --detector strip a.png b.png``): argparse's plain parsing takes
    only the first run of positionals and calls the rest unrecognised."""
    _inside = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        if not self.intermixed or self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True  # parse_known_intermixed_args calls parse_known_args itself
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False

    def error(self, message: str) -> Any:  # type: ignore[override]
        if message.startswith("argument --model: invalid choice"):
            from advparams.models import MODELS

            message += f"; {MODELS.hint}"
        if Parser.json_errors:
            emit_error(self.prog.removeprefix("advparams").strip() or None, message, EXIT_USAGE)
        super().error(message)


def add_import_option(p: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--import MODULE_OR_FILE``: read before parsing by :func:`advparams.cli.main`;
    declared here so that it is accepted and documented everywhere."""
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        metavar="MODULE_OR_FILE",
        default=[] if top else argparse.SUPPRESS,
        help="import a module or .py file first, e.g. one that registers your own model "
        "architecture (repeatable; also $ADVPARAMS_IMPORT; this runs that code: see docs/models.md)",
    )


def add_common(p: argparse.ArgumentParser, *, device: bool = True, data: bool = True) -> None:
    """The options every command has: ``--json``, ``--debug``, ``--import`` and
    ``--device``/``--data-dir``."""
    p.set_defaults(command_name=p.prog.removeprefix("advparams").strip())
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object to stdout (errors too; conventions in docs/cli.md) and no progress bars",
    )
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="print a traceback on errors")
    add_import_option(p)
    if device:
        p.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: CUDA when present)")
        p.add_argument(
            "--model-output",
            default="auto",
            metavar="HOW",
            help="how the model's output becomes class scores: auto (a tensor; else .logits, ['logits'] or "
            "the first element), logits, first, key:NAME, index:N or last-token (default: auto)",
        )
    if data:
        p.add_argument("--data-dir", help="folder holding the data set (required for cifar10 and gtsrb)")


def progress_bar(total: int | None, desc: str, *, quiet: bool = False, unit: str = "it") -> Any:
    """A progress bar on stderr, shown only on a terminal and never with ``--json``
    (``quiet``); ``total=None`` counts without an end."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        file=sys.stderr,
        disable=True if quiet else None,
        leave=False,
        dynamic_ncols=True,
        unit=unit,
    )


def train_progress(model: str, *, quiet: bool) -> tuple[Any, Callable[[TrainProgress], None]]:
    """A progress bar over every step of the training, and the callback that moves it
    (an epoch's summary line on stderr unless ``--json``)."""
    bar = progress_bar(None, f"train {model}", quiet=quiet)

    def on_step(p: TrainProgress) -> None:
        bar.total = p.epochs * p.steps
        bar.update(1)
        bar.set_postfix(epoch=f"{p.epoch}/{p.epochs}", loss=f"{p.loss:.3f}")
        if p.record is not None and not quiet:
            bar.write(
                f"epoch {p.epoch}/{p.epochs}: loss {p.record.loss:.4f}, train {pct(p.record.train_accuracy)}, "
                f"test {pct(p.record.eval_accuracy)} ({p.record.seconds:.1f} s)",
                file=sys.stderr,
            )

    return bar, on_step


def verdict_fields(v: Any, calibration: Any, fpr: float) -> dict[str, Any]:
    """The JSON fields of a yes/no verification against null models (a watermark's, a
    fingerprint's): score, threshold, p-value, decision, the rate and the nulls' scores."""
    return {
        "score": v.score,
        "threshold": v.threshold,
        "p_value": v.p_value,
        "verified": v.decision,
        "fpr": fpr,
        "null_scores": list(calibration.null_scores),
    }


def json_ready(value: Any) -> Any:
    """``value`` in the ``--json`` conventions: floats to 6 significant digits (no
    float32 noise), NaN and infinities as null, tuples as lists, paths as strings."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return json_ready(value.item())
    return str(value)


def emit(args: argparse.Namespace, summary: dict[str, Any], lines: Sequence[str]) -> None:
    """Prints ``lines``, or with ``--json`` the summary as one JSON object with
    ``schema`` and ``ok: true`` added (``docs/cli.md``)."""
    if args.json:
        command = summary.get("command") or getattr(args, "command_name", None)
        obj = {"schema": JSON_SCHEMA, "ok": True, **summary, "command": command}
        print(json.dumps(json_ready(obj), sort_keys=True))
    else:
        for line in lines:
            print(line)


def emit_error(command: str | None, message: str, code: int) -> None:
    """The ``--json`` object of a failed command."""
    obj = {"schema": JSON_SCHEMA, "ok": False, "command": command, "error": message, "exit_code": code}
    print(json.dumps(obj, sort_keys=True))


def exit_status(code: int | None) -> int:
    return EXIT_OK if code is None else int(code)


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def plain(text: str) -> str:
    """Docstring text without reStructuredText markup: ````x```` -> x,
    ``:class:`~a.b.C``` -> C, ``:func:`f``` -> f."""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([^`<]+?)`", r"\1", text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    return re.sub(r"`([^`]+)`", r"\1", text)


def summary_line(obj: Any) -> str:
    """The first line of an object's docstring, without markup (its one-line description)."""
    doc = getattr(obj, "description", None)
    if not isinstance(doc, str):
        doc = (obj.__doc__ or "").strip().split("\n\n", 1)[0]
    return plain(" ".join(doc.split()))


def member_summaries(registry: Any) -> list[tuple[str, str]]:
    """``(name, one-line description)`` of every member of a registry."""
    return [(name, summary_line(registry.get(name))) for name in registry.names()]


def options_help(registry: Any, *, only: str | None = None) -> str:
    """Registered members' ``--set`` options (all, or ``only`` one), with defaults and
    descriptions, without markup."""
    parts = []
    for name in [only] if only else registry.names():
        member = registry.get(name)
        parts.append(f"{name}: {summary_line(member)}")
        parts.append(f"options of {registry.family} {name!r} (--set KEY=VALUE; lists and objects as JSON):")
        parts += [f"  {o.name} (default {o.default!r}): {plain(o.doc)}" for o in option_docs(member.Config)]
    return "\n".join(parts)


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


def read_key(args: argparse.Namespace) -> Key:
    """The key file ``args.key``, unsealed with the passphrase of :func:`read_passphrase`
    when it is sealed (one clear error when no passphrase is given)."""
    passphrase = None
    if key_is_sealed(args.key):
        passphrase = read_passphrase(args, confirm=False)
        if passphrase is None:
            raise PassphraseError(f"key file {args.key} is sealed: pass --passphrase-file or set ${PASSPHRASE_ENV}")
    return load_key(args.key, passphrase=passphrase)


def read_passphrase(
    args: argparse.Namespace,
    *,
    confirm: bool,
    file_option: str = "passphrase_file",
    use_env: bool = True,
    prompt: str = "Key passphrase: ",
) -> Passphrase | None:
    """From the file ``args.<file_option>`` names (its first line, as bytes), then
    $ADVPARAMS_PASSPHRASE (bytes) when ``use_env``, then a prompt on a terminal."""
    if getattr(args, file_option, None):
        data = read_file(
            getattr(args, file_option), what="passphrase file", limit=LIMITS["passphrase"], error=PassphraseError
        )
        lines = data.splitlines()
        return lines[0] if lines else b""
    env = os.environb.get(PASSPHRASE_ENV.encode()) if os.name != "nt" else os.environ.get(PASSPHRASE_ENV, "").encode()
    if use_env and env:
        return env
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat passphrase: ") != first:
            raise PassphraseError("the passphrases do not match")
        return first
    return None


def dataset_name(args: argparse.Namespace, ckpt_meta: dict[str, Any]) -> str:
    """``--dataset``, else the checkpoint's (:func:`advparams.usecases.checkpoint_dataset`)."""
    return checkpoint_dataset(ckpt_meta, args.dataset)


def load_split(name: str, split: str, data_dir: str | None) -> ImageDataset:
    return load_dataset(name, split, data_dir)


def not_an_input(out: str, *inputs: str | None) -> None:
    """Refuses an output path that is one of the command's own inputs (even with
    ``--force``: a command never writes over what it reads, a key least of all)."""
    target = Path(out).expanduser().resolve()
    for given in inputs:
        if given is not None and Path(given).expanduser().resolve() == target:
            raise ConfigError(f"the output {out} is one of this command's inputs ({given}); choose another path")


distinct_outputs = distinct_paths
"""Refuses outputs that are each other or the input (:func:`advparams.usecases.distinct_paths`)."""


# ----------------------------------------------------------------------------- commands


def command_line(args: argparse.Namespace) -> str:
    import shlex

    return "advparams " + " ".join(shlex.quote(a) for a in args.argv)


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise AdvParamsError("plots need matplotlib: pip install 'advparams[report]', or pass --no-plots") from None
