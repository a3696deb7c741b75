"""Commands run in child processes forked from one server that imported torch and the
toolkit once (``multiprocessing``'s forkserver): a test that starts dozens of short
commands pays the 3-4 s of imports once instead of once per command.

Each child is still a process of its own: it runs the command's ``main`` from a fresh
fork with its own working folder, environment and output files, and a ``SIGKILL`` kills it
exactly as it kills a command started from the shell. The functions a child runs live in
:mod:`tests.forked_child`, which the server imports ahead.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import forked_child

_PRELOAD = ["torch", "transformers", "advparams.cli", "advparams.huggingface.folder", "tests.forked_child"]
_context: Any = None


def _ctx() -> Any:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(_PRELOAD)
    return _context


@dataclass(frozen=True)
class Done:
    """How a forked command ended: its exit code (``-9`` when killed), stdout, stderr."""

    returncode: int
    stdout: str
    stderr: str


def run(
    target: str,
    args: Sequence[Any],
    *,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    kill_after: float | None = None,
    timeout: float = 300,
) -> Done:
    """Runs ``tests.forked_child.<target>(*args)`` in a forked child whose working folder is
    ``workdir`` and whose environment is ``env`` (default: this process's); with
    ``kill_after``, the child is sent ``SIGKILL`` if it is still running after that many
    seconds."""
    with tempfile.NamedTemporaryFile(delete=False) as o, tempfile.NamedTemporaryFile(delete=False) as e:
        out, err = Path(o.name), Path(e.name)
    fn = getattr(forked_child, target)
    proc = _ctx().Process(target=forked_child.enter, args=(fn, args, str(workdir), dict(env or os.environ), out, err))
    proc.start()
    proc.join(timeout=kill_after if kill_after is not None else timeout)
    if proc.is_alive():
        proc.kill() if kill_after is not None else proc.terminate()
        proc.join(timeout=60)
        if kill_after is None:
            raise TimeoutError(f"{target}{tuple(args)} ran over {timeout} s")
    code = proc.exitcode if proc.exitcode is not None else -signal.SIGKILL
    texts = [p.read_text(errors="replace") if p.exists() else "" for p in (out, err)]
    for p in (out, err):
        p.unlink(missing_ok=True)
    return Done(code, *texts)
