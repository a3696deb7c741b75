"""What the command-line tests share: running a command and checking a one-line error."""

from __future__ import annotations

from typing import Any

from advparams.cli import main


def run(capsys: Any, *argv: Any) -> tuple[int, str, str]:
    """Runs ``advparams ARGV...`` in this process; (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, match: str) -> None:
    """The command failed with exit 1 and one ``advparams: error:`` line containing ``match``."""
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("advparams: error: "), err
    assert match in lines[0], lines[0]
