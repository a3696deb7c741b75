"""The documentation runs as written: docs/cli.md's command reference is the parser's own
``--help``, its walk-through's commands exit as their comments say, and the README's
Python example runs on a saved checkpoint (twice, as a user would)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from advparams.cli import main
from advparams.cli.reference import render

ROOT = Path(__file__).resolve().parents[2]


def test_the_command_reference_in_docs_cli_md_is_up_to_date() -> None:
    # in a fresh process: other tests register models of their own in this one
    proc = subprocess.run(
        [sys.executable, "-m", "advparams.cli.reference", str(ROOT / "docs" / "cli.md"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ADVPARAMS_IMPORT": ""},
    )
    assert proc.returncode == 0, proc.stderr + "run: python -m advparams.cli.reference docs/cli.md"


def test_the_reference_renders_every_command() -> None:
    text = render("intro\n")
    assert text.startswith("intro\n") and "### `advparams lock`" in text and "### `advparams watermark verify`" in text


def walkthrough() -> list[tuple[str, int]]:
    page = (ROOT / "docs" / "cli.md").read_text()
    block = page.split("<!-- walkthrough -->", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    steps = []
    for line in block.strip().splitlines():
        command, _, comment = line.partition("#")
        steps.append((command.strip(), int(re.fullmatch(r"\s*exit (\d+)\s*", comment).group(1))))  # type: ignore[union-attr]
    return steps


def test_the_walkthrough_in_docs_cli_md_runs_with_the_exit_codes_it_states(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    steps = walkthrough()
    assert len(steps) >= 10
    for command, expected in steps:
        argv = shlex.split(command)
        assert argv[0] == "advparams"
        code = main(argv[1:])
        out, err = capsys.readouterr()
        assert code == expected, f"{command}: exit {code}, expected {expected}\n{err}"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("<!-- api-example -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]


def test_the_readme_api_example_runs_as_written_twice(tmp_path, monkeypatch, capsys) -> None:
    example = readme_example()
    checkpoint = re.search(r'load_checkpoint\("([^"]+)"\)', example)
    assert checkpoint, "the example starts from a saved checkpoint"
    monkeypatch.chdir(tmp_path)
    # the checkpoint the README assumes, trained as its command line section says (on the
    # synthetic data set here, so that the test needs no download)
    argv = ["train", "--model", "lenet", "--dataset", "synthetic", "--epochs", "2", "--out", checkpoint.group(1)]
    assert main(argv) == 0
    source = example.replace('"fashion-mnist"', '"synthetic"')
    for _ in range(2):  # a second run must not fail on the files the first one wrote
        namespace: dict[str, object] = {}
        exec(compile(source, "README.md", "exec"), namespace)  # noqa: S102  (our own README)
        assert namespace["result"].report.target_met  # type: ignore[attr-defined]
    capsys.readouterr()


@pytest.mark.parametrize("page", ["README.md", "docs/cli.md", "docs/models.md"])
def test_no_page_says_usage_errors_exit_1(page: str) -> None:
    text = (ROOT / page).read_text()
    assert not re.search(r"usage errors? (exit|exits|exiting) (with )?1", text)


def test_10_documented_exit_codes_are_the_ones_used() -> None:
    readme = (ROOT / "README.md").read_text()
    cli = (ROOT / "docs" / "cli.md").read_text()
    assert "exits 1" in readme and "usage error" in readme and "exit 2" in readme.replace("exits 2", "exit 2")
    for code, meaning in ((0, "success"), (1, "error"), (2, "usage"), (3, "not verified"), (4, "missed")):
        assert re.search(rf"\|\s*{code}\s*\|[^\n]*{meaning}", cli), (code, meaning)


def _documented_command_lines() -> list[tuple[str, list[str]]]:
    """Every ``advparams ...`` line in a code block of the docs and in an epilog of
    ``--help``, split as a shell would (comments and continuation lines handled)."""
    import shlex

    from advparams.cli import build_parser

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    texts = [  # the code blocks of each page
        (str(p.relative_to(ROOT)), "\n".join(re.findall(r"```[a-z]*\n(.*?)```", p.read_text(), re.S))) for p in pages
    ]
    parser = build_parser()
    subs = [a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction)]
    for name, sub in subs[0].choices.items():
        texts.append((f"advparams {name} --help", sub.epilog or ""))
    out = []
    for where, text in texts:
        joined = re.sub(r"\\\n\s*", " ", text)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            if not line.startswith("advparams ") or "..." in line or "<" in line or "|" in line:
                continue
            try:
                words = shlex.split(line, comments=True)
            except ValueError:
                continue
            if len(words) > 1 and re.fullmatch(r"[a-z-][a-z-]*", words[1]):  # not "advparams  AdvParams (...)"
                out.append((where, words[1:]))
    return out


def test_every_documented_command_line_parses() -> None:
    """A command shown in the docs or in an epilog is accepted by the parser as shown
    (``advparams detect runs/bd --detector strip query1.png`` was refused, exit 2)."""
    from advparams.cli import build_parser

    lines = _documented_command_lines()
    assert len(lines) > 50
    bad = []
    for where, words in lines:
        if not words or words[0] in ("--help", "--version") or "--help" in words or "-h" in words:
            continue
        try:
            build_parser().parse_args(words)
        except SystemExit:
            bad.append(f"{where}: advparams {' '.join(words)}")
    assert not bad, "\n".join(bad)
