"""The ``advparams`` command line: a thin layer over the library, one module per command
group (:mod:`~advparams.cli.models`, :mod:`~advparams.cli.locks`,
:mod:`~advparams.cli.evaluation`, :mod:`~advparams.cli.watermarks`, :mod:`~advparams.cli.backdoors`,
:mod:`~advparams.cli.detect`, :mod:`~advparams.cli.fingerprints`, :mod:`~advparams.cli.demo`); each
parses, calls the library and prints.

Every user error (bad files, wrong keys, missing data, unknown names) ends in one line
on stderr, ``advparams: error: ...``, and exit status 1; usage errors exit with 2. Any
other exception is one such line too; ``--debug`` adds its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from advparams import __version__
from advparams.cli import backdoors, demo, detect, evaluation, fingerprints, locks, models, watermarks
from advparams.errors import AdvParamsError


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

    for group in (models, locks, evaluation, watermarks, backdoors, detect, fingerprints, demo):
        group.add_parsers(sub)
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
