"""The ``advparams`` command line: a thin layer over the library, one module per command
group; each parses, calls the library and prints. The groups are every registered
family's verbs (:attr:`advparams.house.Family.cli`: :mod:`~advparams.cli.models`,
:mod:`~advparams.cli.locks`, :mod:`~advparams.cli.watermarks`,
:mod:`~advparams.cli.backdoors`, :mod:`~advparams.cli.detect`,
:mod:`~advparams.cli.fingerprints`, :mod:`~advparams.cli.tracing`, and an owner's own),
then the house's (:mod:`~advparams.cli.evaluation`, :mod:`~advparams.cli.demo`).

Exit codes (``docs/cli.md``): 0 success (for a yes/no command: yes); 1 an error; 2 a
usage error (an unknown option, a missing argument: argparse's convention); 3 a yes/no
command's "no" (not verified, nobody identified, a backdoor found); 4 a lock that missed
its target without ``--allow-partial``; 130 interrupted. Every error (bad files, wrong
keys, missing data, unknown names) is one line on stderr, ``advparams: error: ...``;
with ``--json`` it is also one JSON object on stdout (``"ok": false``). ``--debug``
adds the traceback.

``--import MODULE_OR_FILE`` (repeatable, anywhere on the line) and ``$ADVPARAMS_IMPORT``
bring in the user's own registrations before the parser is built, so a registered
architecture is known to every command (:mod:`advparams.plugins`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from advparams.cli import demo, evaluation
from advparams.cli._common import EXIT_ERROR, EXIT_USAGE, Parser, add_import_option, emit_error, exit_status
from advparams.errors import AdvParamsError
from advparams.house import families
from advparams.version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="advparams",
        description="Lock trained PyTorch models with AdvParams and unlock them with their secret key; "
        "watermark, fingerprint, backdoor and evaluate them.",
        epilog="Run 'advparams COMMAND --help' for a command's options, 'advparams list' for every "
        "registered scheme, attack, model and data set. Exit codes: 0 success, 1 error, 2 usage error, "
        "3 a yes/no command's no, 4 a lock that missed its target (docs/cli.md).",
    )
    parser.add_argument("--version", action="version", version=f"advparams {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="on an error, print the Python traceback too (for bug reports)"
    )
    add_import_option(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    for family in families():
        if family.cli is not None:
            family.cli(sub)
    for group in (evaluation, demo):
        group.add_parsers(sub)
    return parser


def imports_in(argv: Sequence[str]) -> list[str]:
    """The values of every ``--import X`` / ``--import=X`` on the command line (before a
    bare ``--``), read before the parser is built."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            break
        if a == "--import" and i + 1 < len(argv):
            out.append(argv[i + 1])
            i += 2
            continue
        if a.startswith("--import="):
            out.append(a.split("=", 1)[1])
        i += 1
    return out


def _parse(argv: list[str], as_json: bool) -> argparse.Namespace:
    """The command line parsed (a usage error is one JSON object too with ``--json``)."""
    parser = build_parser()
    Parser.json_errors = as_json
    try:
        args = parser.parse_args(argv)
    finally:
        Parser.json_errors = False
    args.argv = argv
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``advparams`` command."""
    import logging

    from advparams.devices import strict_mkl
    from advparams.plugins import load_plugins

    strict_mkl()  # before any matrix product of this process (advparams.devices.MKL_STRICT)
    logging.basicConfig(level=logging.WARNING, format="advparams: %(levelname)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    debug = "--debug" in argv
    try:
        load_plugins(imports_in(argv))
    except BaseException as exc:  # noqa: BLE001
        return _fail(exc, command=None, as_json=as_json, debug=debug)
    args = _parse(argv, as_json)
    func: Callable[[argparse.Namespace], int] = args.func
    from advparams.metrics.accuracy import model_output

    try:
        with model_output(getattr(args, "model_output", "auto")):
            code = exit_status(func(args))
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return code
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:
        print("advparams: interrupted; nothing was half-written", file=sys.stderr)
        return 130
    except BaseException as exc:  # noqa: BLE001  (the CLI's one promise: one error line, exit 1)
        if isinstance(exc, SystemExit):
            raise
        return _fail(
            exc,
            command=getattr(args, "command_name", None),
            as_json=getattr(args, "json", as_json),
            debug=args.debug,
        )


EXIT_PIPE = 141
"""The reader of standard output went away (``advparams list --json | head``): 128 + SIGPIPE, as
the shell's own tools exit; nothing more is printed."""


def _reader_gone() -> int:
    """Points stdout at /dev/null (so that Python's flush at exit stays quiet) and
    returns :data:`EXIT_PIPE`."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_PIPE


def _fail(exc: BaseException, *, command: str | None, as_json: bool, debug: bool) -> int:
    if debug:
        import traceback

        traceback.print_exc()
    line = error_line(exc)
    print(f"advparams: error: {line}", file=sys.stderr)
    code = getattr(exc, "exit_code", EXIT_ERROR)
    if as_json:
        try:
            emit_error(command, line, code)
        except BrokenPipeError:
            return _reader_gone()
    return int(code)


__all__ = ["EXIT_ERROR", "EXIT_USAGE", "build_parser", "error_line", "imports_in", "main"]


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
