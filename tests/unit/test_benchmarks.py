"""Every benchmark script imports and runs: ``--help`` of each, and the two that only read
rows run on the rows kept in ``docs/evaluation/``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import forked

ROOT = Path(__file__).parents[2]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def _run(*args: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "benchmarks")])}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def test_there_are_benchmarks() -> None:
    assert len(SCRIPTS) >= 8


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_each_benchmark_imports_and_explains_itself(script: Path, tmp_path: Path) -> None:
    # `python SCRIPT --help`, in a process forked from one that imported torch once
    paths = [str(ROOT / "src"), str(ROOT / "benchmarks")]
    done = forked.run("script", (str(script), ["--help"], paths), workdir=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:") and len(done.stdout) > 200


def test_the_hardened_table_says_what_old_rows_do_not_record() -> None:
    # The committed hardened run predates key sizes in lock rows: the table says so
    # instead of reading key files the repository does not hold.
    done = _run(ROOT / "benchmarks" / "hardened_table.py", ROOT / "docs" / "evaluation" / "hardened")
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("| key file, bytes")]
    assert line.count("not recorded") == 5


def _comparison_rows() -> list:
    from advparams.evaluation.rows import ResultRow

    def lock(scheme: str, seed: int, acc: float, values: int, size: int, secs: float) -> ResultRow:
        m = {"key_values": values, "key_bytes": size, "key_secret": scheme == "b", "bit_exact": True}
        return ResultRow("r", "lock", seed, scheme, accuracy=acc, metrics=m, seconds=secs)

    tune = {"data_fraction": 0.01, "epochs": 40}
    rows = [lock("a", 0, 0.10, 10, 1000, 0.2), lock("a", 1, 0.12, 20, 1200, 0.4)]
    rows += [lock("b", 0, 0.09, 0, 1224, 0.1), lock("b", 1, 0.11, 0, 1224, 0.3)]
    rows += [ResultRow("r", "baseline", s, "scratch", "finetune", tune, accuracy=0.70) for s in (0, 1)]
    for scheme, tuned, clip, reset in (("a", (0.75, 0.77), 0.15, (0.5, 0.1)), ("b", (0.70, 0.72), 0.25, (0.1, 0.1))):
        for s in (0, 1):
            rows.append(ResultRow("r", "attack", s, scheme, "finetune", tune, accuracy=tuned[s]))
            rows.append(ResultRow("r", "attack", s, scheme, "clip", {"low": 1}, accuracy=clip))
            for i, acc in enumerate(reset):
                rows.append(ResultRow("r", "attack", s, scheme, "outlier-reset", {"m": i}, accuracy=acc))
    return rows


def test_the_comparison_table_on_hand_made_rows() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from comparison_table import comparison_rows
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    header, body = comparison_rows(_comparison_rows())
    assert header[2] == "adaptive attacks held to ≤ 20 % (of 3)"
    assert header[3] == "fine-tuning head start, points (1 % of the data, 40 epochs)"
    # a: clip 15 % held; reset 0 undone (50 %), reset 1 held (10 %); head start 6 points
    assert body[0] == [
        "`a`",
        "11.00 (12.00)",
        "2: undone by 1 of 2 outlier-reset",
        "+6.00",
        "15, 1100 B",
        "0.30 (0.20-0.40)",
        "yes",
    ]
    # b: clip 25 % undone, both resets held; head start 1 point; a shuffle secret
    assert body[1] == [
        "`b`",
        "10.00 (11.00)",
        "2: undone by clip",
        "+1.00",
        "0 + 32-byte secret, 1224 B",
        "0.20 (0.10-0.30)",
        "yes",
    ]
