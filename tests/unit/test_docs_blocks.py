"""The docs' generated blocks: every measured table between the markers is what its
command prints from the committed rows, and a changed digit is caught."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import docs_blocks  # noqa: E402


@pytest.fixture(scope="module")
def generated() -> dict[str, tuple[str, ...]]:
    """Each block's command, run once in this process: what it prints from the committed rows
    (test_a_block_run_here_is_what_its_process_prints checks that this is the same)."""
    out: dict[str, tuple[str, ...]] = {}
    for page in docs_blocks.documents(ROOT):
        for block in docs_blocks.blocks(page):
            if block.command not in out:
                out[block.command] = docs_blocks.generate_here(block, ROOT)
    return out


def test_every_generated_block_matches_its_rows(generated) -> None:
    assert generated, "no generated blocks found"
    for page in docs_blocks.documents(ROOT):
        for block in docs_blocks.blocks(page):
            assert block.lines == generated[block.command], (
                f"{block.name(ROOT)} is stale: {docs_blocks.first_difference(block.lines, generated[block.command])}; "
                "run `make docs`"
            )


def test_any_changed_digit_in_any_block_fails_the_check(generated, tmp_path, monkeypatch, capsys) -> None:
    # a copy of the pages and the rows; the commands' output is the one generated above
    for name in ("README.md", "docs", "benchmarks"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    monkeypatch.setattr(docs_blocks, "generate", lambda block, root: generated[block.command])
    assert docs_blocks.main(["--check", "--root", str(tmp_path)]) == 0
    tried = 0
    for page in docs_blocks.documents(tmp_path):
        text = page.read_text(encoding="utf-8")
        lines = text.splitlines()
        for block in docs_blocks.blocks(page):
            for k, line in enumerate(block.lines):
                for m in re.finditer(r"\d", line):
                    digit = m.group()
                    changed = line[: m.start()] + str((int(digit) + 1) % 10) + line[m.end() :]
                    copy = [*lines]
                    copy[block.first + k] = changed
                    page.write_text("\n".join(copy) + "\n", encoding="utf-8")
                    assert docs_blocks.main(["--check", "--root", str(tmp_path), str(page)]) == 1
                    err = capsys.readouterr().err
                    assert f"block {block.number}" in err and str(page.relative_to(tmp_path)) in err
                    assert f"line {k + 1} of the block" in err
                    tried += 1
        page.write_text(text, encoding="utf-8")
    assert tried > 100  # every digit of every block was changed once


def test_make_docs_rewrites_a_stale_block_and_leaves_the_rest(generated, tmp_path, monkeypatch) -> None:
    page = next(p for p in docs_blocks.documents(ROOT) if docs_blocks.blocks(p))
    copy = tmp_path / "docs" / page.name
    copy.parent.mkdir()
    text = page.read_text(encoding="utf-8")
    block = docs_blocks.blocks(page)[0]
    lines = text.splitlines()
    lines[block.first] = "| a stale row |"
    copy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(docs_blocks, "generate", lambda b, root: generated[b.command])
    assert docs_blocks.main(["--root", str(tmp_path), str(copy)]) == 0
    assert copy.read_text(encoding="utf-8") == text


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("<!-- generated: python x.py -->\n| row |\n", "has no"),
        ("| row |\n<!-- end generated -->\n", "without its begin"),
        ("<!-- generated: python a.py -->\n<!-- generated: python b.py -->\n<!-- end generated -->\n", "inside"),
    ],
)
def test_broken_markers_are_one_error_naming_the_line(tmp_path, text, match) -> None:
    page = tmp_path / "p.md"
    page.write_text(text, encoding="utf-8")
    with pytest.raises(docs_blocks.BlockError, match=match):
        docs_blocks.blocks(page)


def test_a_command_must_be_python_or_advparams() -> None:
    assert docs_blocks.argv_of("advparams list")[1:3] == ["-m", "advparams"]
    with pytest.raises(docs_blocks.BlockError, match="must start with"):
        docs_blocks.argv_of("rm -rf /")


def test_a_block_run_here_is_what_its_process_prints(generated) -> None:
    # one block of each kind of command: a benchmark script and the CLI
    pages = docs_blocks.documents(ROOT)
    found = [b for p in pages for b in docs_blocks.blocks(p)]
    for prefix in ("python benchmarks/", "advparams "):
        block = next(b for b in found if b.command.startswith(prefix))
        assert docs_blocks.generate(block, ROOT) == generated[block.command]
