"""Transformers (docs/transformers.md): the lock table of an evaluation run, from its rows
alone (no model is run).

    .venv/bin/python benchmarks/transformers_table.py docs/evaluation/transformers-vit

One line per scheme: clean and locked test accuracy (mean ± std over the seeds, and the
worst seed), whether each seed's locked test accuracy is within chance + 2 points (the
issue's target; chance = 1 / classes, the test sets are class-balanced), values changed
per seed, and the lock's cost in forward and backward passes over its lock samples per
seed; the values each AdvParams lock changed by tensor kind (embeddings, attention, MLP,
LayerNorm, pooler and classifier). Then the traced users' copies: accuracy of the copy against the original, and how
many copies white-box tracing named right with how many innocents named.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from advparams.data import DATASETS
from advparams.evaluation import open_run
from advparams.evaluation.rows import ResultRow
from advparams.reports import mean_std


def _pct(values: list[float]) -> str:
    m, s = mean_std([100.0 * v for v in values])
    return f"{m:.2f} ± {s:.2f}" if len(values) > 1 else f"{m:.2f}"


def _per_seed(rows: list[ResultRow], read: object) -> str:
    return " / ".join(str(read(r)) for r in sorted(rows, key=lambda r: r.seed))  # type: ignore[operator]


def lock_table(rows: list[ResultRow], chance: float) -> list[str]:
    clean = {r.seed: float(r.accuracy or 0) for r in rows if r.kind == "clean"}
    locks: dict[str, list[ResultRow]] = defaultdict(list)
    for r in rows:
        if r.kind == "lock" and r.scheme is not None:
            locks[r.scheme].append(r)
    out = [
        "| scheme | seeds | clean % | locked % | worst locked % | within chance + 2 | values changed "
        "(per seed) | forward+backward passes (per seed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scheme, rs in locks.items():
        locked = [float(r.accuracy or 0) for r in rs]
        within = sum(100.0 * a <= chance + 2.0 + 1e-9 for a in locked)
        passes = _per_seed(rs, lambda r: f"{r.metrics['forward_passes']:.1f}+{r.metrics['backward_passes']:.1f}")
        out.append(
            f"| {scheme} | {len(rs)} | {_pct([clean[r.seed] for r in rs])} | {_pct(locked)} | "
            f"{100.0 * max(locked):.2f} | {within} of {len(rs)} | "
            f"{_per_seed(rs, lambda r: r.metrics['params_changed'])} | {passes} |"
        )
    return out


KINDS = ("embeddings", "attention", "MLP", "LayerNorm", "pooler and classifier", "other")


def tensor_kind(name: str) -> str:
    """The kind of a transformer's tensor, from its name (ViT's and BERT's names)."""
    lowered = name.lower()
    if "norm" in lowered:
        return "LayerNorm"
    if "embeddings" in lowered:
        return "embeddings"
    if "attention" in lowered:
        return "attention"
    if "mlp" in lowered or "intermediate" in lowered or "output.dense" in lowered:
        return "MLP"
    if "classifier" in lowered or "pooler" in lowered:
        return "pooler and classifier"
    return "other"


def kinds_table(rows: list[ResultRow]) -> list[str]:
    """Values each AdvParams lock changed, by tensor kind, summed over the seeds."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    for r in rows:
        if r.kind == "lock" and r.scheme is not None and r.metrics.get("params_total") != r.metrics["params_changed"]:
            for name, n in r.metrics.get("changed_per_tensor", {}).items():
                counts[r.scheme][tensor_kind(name)] += int(n)
    used = [k for k in KINDS if any(c[k] for c in counts.values())]
    out = ["| scheme | " + " | ".join(used) + " |", "|---" * (len(used) + 1) + "|"]
    out += [f"| {scheme} | " + " | ".join(str(c[k]) for k in used) + " |" for scheme, c in counts.items()]
    return out


def tracing_table(rows: list[ResultRow]) -> list[str]:
    copies = [r for r in rows if r.kind == "trace-copy"]
    if not copies:
        return []
    gaps = [100.0 * (float(r.accuracy or 0) - float(r.metrics["accuracy_original"])) for r in copies]
    named = sum(bool(r.metrics["white"]["named_right"]) for r in copies)
    innocents = sum(int(r.metrics["white"]["innocents"]) for r in copies)
    black = [r.metrics["black"] for r in copies if "black" in r.metrics]
    black_cell = f"{sum(bool(b['named_right']) for b in black)} of {len(black)}" if black else "not made (token ids)"
    seeds = len({r.seed for r in copies})
    return [
        "| users' copies | copy − original (points) | white-box named right | innocents named "
        "| black-box named right |",
        "|---|---|---|---|---|",
        f"| {len(copies)} ({seeds} seeds) | {min(gaps):.2f} to {max(gaps):.2f} | {named} of {len(copies)} | "
        f"{innocents} | {black_cell} |",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="evaluation run folder or its report folder (results.jsonl)")
    args = ap.parse_args()
    run = open_run(args.run)
    rows = run.rows()
    chance = 100.0 / DATASETS.get(run.read_config().dataset).num_classes
    print("\n".join(lock_table(rows, chance)))
    print()
    print("Values changed by tensor kind, all seeds together:")
    print()
    print("\n".join(kinds_table(rows)))
    trace = tracing_table(rows)
    if trace:
        print()
        print("\n".join(trace))


if __name__ == "__main__":
    main()
