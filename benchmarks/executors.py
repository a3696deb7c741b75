"""Benchmark: one evaluation config run by the serial and by the Ray executor, from empty run
folders, one after the other; the wall-clock time of each, the sum of its units' own
seconds, and whether every row but the seconds is equal (docs/evaluation.md, "Measured:
serial and Ray").

    python benchmarks/executors.py --config configs/fashion-mnist.yaml --seeds 0 \\
        --out docs/benchmarks/executors.jsonl
    python benchmarks/executors.py --table docs/benchmarks/executors.jsonl

Run it on an otherwise idle machine: the speed-up is the measure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, log, read_jsonl  # noqa: E402


def _rows(folder: Path) -> list[dict[str, Any]]:
    text = (folder / "results.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _comparable(rows: list[dict[str, Any]]) -> list[str]:
    """The rows without their seconds (and without session rows), sorted: what must be equal."""
    out = []
    for r in rows:
        if r["kind"] == "session":
            continue
        out.append(json.dumps({k: v for k, v in r.items() if k != "seconds"}, sort_keys=True))
    return sorted(out)


def run(config: str, seeds: list[int], executor: str, workers: int, folder: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "advparams", "evaluate-protection", "--config", config, "--out", str(folder)]
    argv += ["--seeds", *map(str, seeds), "--executor", executor, "--no-plots", "--json"]
    if executor == "ray":
        argv += ["--workers", str(workers)]
    log(f"{executor}: {' '.join(argv[2:])}")
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    rows = _rows(folder)
    units = sum(float(r["seconds"]) for r in rows if r["kind"] != "session")
    return {"executor": executor, "workers": workers if executor == "ray" else 1, "wall_seconds": wall,
            "unit_seconds": units, "rows": len([r for r in rows if r["kind"] != "session"])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/fashion-mnist.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", help="JSON-lines file to append results to")
    parser.add_argument("--table", metavar="ROWS", help="only print the table of a JSON-lines file of rows")
    args = parser.parse_args()
    if args.table:
        print_table(read_jsonl(args.table))
        return
    env = environment(torch.device("cpu"))
    with tempfile.TemporaryDirectory(prefix="executors-") as tmp:
        serial = run(args.config, args.seeds, "serial", 1, Path(tmp) / "serial")
        ray = run(args.config, args.seeds, "ray", args.workers, Path(tmp) / "ray")
        equal = _comparable(_rows(Path(tmp) / "serial")) == _comparable(_rows(Path(tmp) / "ray"))
    out = []
    for r in (serial, ray):
        out.append({"benchmark": "executors", "config": args.config, "seeds": args.seeds, **r,
                    "rows_equal_to_serial": equal, "cpu_count": os.cpu_count(), "environment": env})  # fmt: skip
    append_jsonl(args.out, out)
    print_table(out)


def _clock(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s"


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per executor run; the speed-up is against the serial run of the same config and seeds."""
    print("| config, seeds | executor | rows | wall-clock | sum of the units' own seconds | speed-up | rows equal |")
    print("|---|---|---|---|---|---|---|")
    serial: dict[str, float] = {}
    for r in rows:
        key = f"{r['config']}, {' '.join(map(str, r['seeds']))}"
        if r["executor"] == "serial":
            serial[key] = r["wall_seconds"]
        name = "serial" if r["executor"] == "serial" else f"ray --workers {r['workers']}"
        speed = f"{serial[key] / r['wall_seconds']:.2f}x" if key in serial else "–"
        same = "yes" if r["rows_equal_to_serial"] else "NO"
        print(
            f"| `{key}` | `{name}` | {r['rows']} | {_clock(r['wall_seconds'])} | {r['unit_seconds']:,.0f} s | "
            f"{speed} | {same} |"
        )


if __name__ == "__main__":
    main()
