"""Generated blocks: the measured tables of README.md and docs/*.md, rewritten from committed rows.

A block lies between two markers that name the command printing it from committed rows:

    <!-- generated: python benchmarks/roster_scale.py --table docs/benchmarks/roster_scale.jsonl -->
    | users | file size | ...
    <!-- end generated -->

The command runs from the repository root without a shell; its first word is ``python``
(this interpreter) or ``advparams`` (``python -m advparams``). Its standard output, less
trailing blank lines, is the block.

    python tools/docs_blocks.py            # rewrite every block (make docs)
    python tools/docs_blocks.py --check    # regenerate in memory; exit 1 naming the file,
                                           # the block and the first differing line (make docs-check)
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN = re.compile(r"^<!-- generated: (?P<command>.+?) -->$")
END = "<!-- end generated -->"
TIMEOUT_S = 600  # a hang guard: the slowest block rebuilds a report in seconds


class BlockError(Exception):
    """A block that cannot be read or generated (one line, naming the file and block)."""


@dataclass(frozen=True)
class Block:
    """One generated block of a file: its command and the lines between its markers."""

    path: Path
    number: int  # 1-based, in the file's order
    command: str
    first: int  # index of the first line after the begin marker
    lines: tuple[str, ...]

    def name(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}: block {self.number} ({self.command})"


def documents(root: Path) -> list[Path]:
    """README.md and every Markdown page under docs/ but the evaluation reports (which
    ``advparams report`` writes whole)."""
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [p for p in pages if p.is_file() and "evaluation" not in p.relative_to(root).parts[1:-1]]


def blocks(path: Path) -> list[Block]:
    """The generated blocks of ``path``, in order; an unclosed or nested block is an error."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = BEGIN.match(lines[i].strip())
        if m is None:
            if lines[i].strip() == END:
                raise BlockError(f"{path}: line {i + 1}: an end marker without its begin")
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() != END:
            if BEGIN.match(lines[j].strip()):
                raise BlockError(f"{path}: line {j + 1}: a block begins inside the block of line {i + 1}")
            j += 1
        if j == len(lines):
            raise BlockError(f"{path}: line {i + 1}: the block has no '{END}'")
        out.append(Block(path, len(out) + 1, m["command"], i + 1, tuple(lines[i + 1 : j])))
        i = j + 1
    return out


def argv_of(command: str) -> list[str]:
    """The command as an argument list for this interpreter (no shell)."""
    argv = shlex.split(command)
    if not argv:
        raise BlockError("an empty command")
    if argv[0] in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    if argv[0] == "advparams":
        return [sys.executable, "-m", "advparams", *argv[1:]]
    raise BlockError(f"a command must start with 'python' or 'advparams', not {argv[0]!r}")


def generate(block: Block, root: Path) -> tuple[str, ...]:
    """The lines the block's command prints now."""
    try:
        done = subprocess.run(
            argv_of(block.command), cwd=root, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise BlockError(f"{block.name(root)}: its command ran past {TIMEOUT_S} s (a hang guard)") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        raise BlockError(f"{block.name(root)}: its command exited {done.returncode}: {last}")
    lines = done.stdout.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return tuple(lines)


def generate_here(block: Block, root: Path) -> tuple[str, ...]:
    """What :func:`generate` gives, run in this process (one import of torch for every block:
    what the tests use); the command's working directory is ``root``."""
    import contextlib
    import io
    import runpy

    argv = argv_of(block.command)
    out = io.StringIO()
    old_argv, old_path, old_cwd = sys.argv, list(sys.path), os.getcwd()
    try:
        os.chdir(root)
        with contextlib.redirect_stdout(out):
            if argv[1:2] == ["-m"]:
                from advparams.cli import main as cli_main

                code = cli_main(argv[3:])
            else:
                sys.argv = argv[1:]
                sys.path.insert(0, str(Path(argv[1]).resolve().parent))
                try:
                    runpy.run_path(argv[1], run_name="__main__")
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv, sys.path[:] = old_argv, old_path
        os.chdir(old_cwd)
    if code:
        raise BlockError(f"{block.name(root)}: its command exited {code}")
    lines = out.getvalue().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return tuple(lines)


def first_difference(old: tuple[str, ...], new: tuple[str, ...]) -> str:
    """Where two blocks first differ, as a sentence."""
    for k, (a, b) in enumerate(zip(old, new, strict=False)):
        if a != b:
            return f"line {k + 1} of the block reads {a!r}; generated {b!r}"
    if len(old) > len(new):
        return f"the block has {len(old) - len(new)} lines more than generated, from {old[len(new)]!r}"
    return f"the block lacks {len(new) - len(old)} generated lines, from {new[len(old)]!r}"


def rewrite(path: Path, found: list[tuple[Block, tuple[str, ...]]]) -> None:
    """Writes ``path`` with each block's lines replaced (atomically)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for block, new in sorted(found, key=lambda f: -f[0].first):
        lines[block.first : block.first + len(block.lines)] = list(new)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 at the first stale block")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this checkout)")
    parser.add_argument("files", nargs="*", type=Path, help="only these pages (default: README.md and docs/)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    pages = [p.resolve() for p in args.files] or documents(root)
    stale = 0
    try:
        for page in pages:
            changed = []
            for block in blocks(page):
                new = generate(block, root)
                if new != block.lines:
                    changed.append((block, new))
                    if args.check:
                        print(f"{block.name(root)}: stale: {first_difference(block.lines, new)}", file=sys.stderr)
                        return 1
            if changed:
                rewrite(page, changed)
                stale += len(changed)
                print(f"{page.relative_to(root)}: {len(changed)} block(s) rewritten")
    except (BlockError, OSError, UnicodeDecodeError) as exc:
        print(f"docs_blocks: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"every generated block matches its rows ({len(pages)} pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
