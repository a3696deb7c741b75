"""Every benchmark script imports and runs: ``--help`` of each, and the two that only read
rows run on the rows kept in ``docs/evaluation/``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def _run(*args: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "benchmarks")])}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def test_there_are_benchmarks() -> None:
    assert len(SCRIPTS) >= 8


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_each_benchmark_imports_and_explains_itself(script: Path) -> None:
    done = _run(script, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:") and len(done.stdout) > 200


def test_the_row_tables_run_on_the_kept_rows() -> None:
    done = _run(ROOT / "benchmarks" / "hardened_table.py", ROOT / "docs" / "evaluation" / "hardened")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("|") > 50 and ("✓" in done.stdout or "✗" in done.stdout)
    done = _run(ROOT / "benchmarks" / "watermark_table.py", ROOT / "docs" / "evaluation" / "watermarks")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("|") > 20
