"""What a child of :mod:`tests.forked` runs (imported ahead by the fork server)."""

from __future__ import annotations

import os
import runpy
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import advparams.checkpoint
import advparams.files.writing
from advparams.cli import main


def enter(fn: Callable[..., Any], args: Sequence[Any], cwd: str, env: dict[str, str], out: Path, err: Path) -> None:
    """The child's start: its folder, environment and output files, then ``fn(*args)``."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    fn(*args)


def command(argv: Sequence[str]) -> None:
    """``advparams ARGV``."""
    sys.exit(main(list(argv)))


def command_killed_at(argv: Sequence[str], kill_at: int, step_log: str) -> None:
    """``advparams ARGV`` with its file-system calls (rename, link, unlink, write, fsync,
    mkdir, the exchange and unnamed-file link of :mod:`advparams.files.writing`, the
    weights write) counted into ``step_log``; the process kills itself with ``SIGKILL``
    just before call ``kill_at`` (0: never)."""
    counter = [0]
    log = open(step_log, "a")  # noqa: SIM115  (open until the process ends or is killed)

    def hook(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*a: Any, **k: Any) -> Any:
            counter[0] += 1
            log.write(f"{counter[0]} {name}\n")
            log.flush()
            if counter[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*a, **k)

        return wrapped

    w, c = advparams.files.writing, advparams.checkpoint
    for name in ("rename", "replace", "link", "unlink", "write", "pwrite", "copy_file_range", "fsync", "mkdir",
                 "fchmod"):  # fmt: skip
        setattr(os, name, hook(name, getattr(os, name)))
    shutil.rmtree = hook("rmtree", shutil.rmtree)  # type: ignore[assignment]
    Path.write_text = hook("write_text", Path.write_text)  # type: ignore[method-assign]
    w._exchange = hook("exchange", w._exchange)
    w._link_fd = hook("linkat", w._link_fd)
    c.save_file = hook("save_weights", c.save_file)
    code = main(list(argv))
    log.close()
    # leave as a plain process would, not through the hooked calls of the child's exit
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def script(path: str, argv: Sequence[str], paths: Sequence[str]) -> None:
    """``python PATH ARGV`` with ``paths`` in front of the import path."""
    sys.path[:0] = list(paths)
    sys.argv = [path, *argv]
    runpy.run_path(path, run_name="__main__")
