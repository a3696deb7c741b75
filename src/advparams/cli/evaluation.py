"""``advparams evaluate-protection | report``: the evaluation harness and its reports."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from advparams.cli._common import (
    command_line,
    emit,
    progress_bar,
    require_matplotlib,
)
from advparams.cli._spec import add_verbs


def cmd_evaluate_protection(args: argparse.Namespace) -> int:
    from advparams.evaluation import evaluate_protection, load_config, make_executor
    from advparams.reports import write_report

    overrides = {k: v for k, v in (("seeds", args.seeds), ("data_dir", args.data_dir)) if v}
    config = load_config(args.config, overrides)
    out = Path(args.out or f"runs/eval/{config.name}")
    if not args.no_plots:
        require_matplotlib()
    start = time.perf_counter()
    bar = progress_bar(0, f"evaluate {config.name}", quiet=args.json, unit="unit")

    def on_progress(p: Any) -> None:
        bar.total = p.total
        bar.update(1)
        bar.set_postfix_str(("skip " if p.skipped else "") + p.label[-60:])

    executor = make_executor(args.executor, workers=args.workers, address=args.address, quiet=args.json)
    rows = evaluate_protection(config, out, device=args.device, force=args.force, progress=on_progress,
                               executor=executor, command=command_line(args))  # fmt: skip
    bar.close()
    report = write_report(out, args.report_dir, plots=not args.no_plots)
    seconds = time.perf_counter() - start
    locked = {f"{r.scheme}/seed{r.seed}": r.accuracy for r in rows if r.kind == "lock"}
    summary = {"out": str(out), "report": str(report), "rows": len(rows), "seconds": seconds, "locked_accuracy": locked}
    lines = [f"evaluation {config.name}: {len(rows)} rows in {out} ({seconds:.0f} s this session)", f"report: {report}"]
    emit(args, summary, lines)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from advparams.reports import report_table, write_report

    if args.table is not None:
        text = report_table(args.run, args.table, args.number)
        emit(args, {"run": str(args.run), "section": args.table, "table": text}, [text])
        return 0
    if not args.no_plots:
        require_matplotlib()
    report = write_report(args.run, args.report_dir, command=args.made_with, plots=not args.no_plots)
    emit(args, {"run": str(args.run), "report": str(report)}, [f"report: {report}"])
    return 0


def add_parsers(sub: Any) -> None:
    """Adds these commands (declared in ``evaluation.yaml`` beside this module) to the CLI's sub-parsers."""
    add_verbs(sub, globals())
