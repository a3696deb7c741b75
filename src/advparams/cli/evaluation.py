"""``advparams evaluate-protection | report``: the evaluation harness and its reports."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from advparams.cli._common import (
    add_common,
    command_line,
    emit,
    progress_bar,
    require_matplotlib,
)


def cmd_evaluate_protection(args: argparse.Namespace) -> int:
    from advparams.evaluation import evaluate_protection, load_config, make_executor
    from advparams.reports import write_report

    overrides: dict[str, Any] = {}
    if args.seeds:
        overrides["seeds"] = args.seeds
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
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
    rows = evaluate_protection(
        config,
        out,
        device=args.device,
        force=args.force,
        progress=on_progress,
        executor=executor,
        command=command_line(args),
    )
    bar.close()
    report = write_report(out, args.report_dir, plots=not args.no_plots)
    seconds = time.perf_counter() - start
    locks = [r for r in rows if r.kind == "lock"]
    summary = {
        "out": str(out),
        "report": str(report),
        "rows": len(rows),
        "seconds": seconds,
        "locked_accuracy": {f"{r.scheme}/seed{r.seed}": r.accuracy for r in locks},
    }
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
    """Registers these commands on the top-level parser's subparsers."""
    p = sub.add_parser(
        "evaluate-protection",
        help="train -> lock with every scheme -> every attack, over seeds; JSON lines, report, plots",
        description="Run the evaluation a YAML config describes (see configs/ and docs/evaluation.md): "
        "train or load one model per seed, lock it with every scheme, run every attack setting, and "
        "write OUT/results.jsonl (one row per scheme, attack, setting and seed), OUT/config.yaml "
        "(resolved), and a Markdown report with PNG plots. The work is split into units (train, lock, "
        "attack, ...) that --executor runs one after the other or in parallel with Ray; the rows do not "
        "depend on the executor. Re-running the same command skips the units already done, so an "
        "interrupted run goes on where it stopped.",
    )
    p.add_argument("--config", required=True, help="YAML file describing the evaluation")
    p.add_argument("--out", help="run folder (default: runs/eval/NAME); resumed if it holds the same config")
    p.add_argument("--report-dir", help="write report.md, plots/ and copies of the rows here (default: --out)")
    p.add_argument("--seeds", type=int, nargs="+", help="replace the config's seeds")
    p.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")
    p.add_argument(
        "--executor",
        choices=["serial", "ray"],
        default="serial",
        help="serial: one unit after the other in this process (default); ray: units in parallel "
        "on a Ray cluster (pip install 'advparams[distributed]'); the rows are the same",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="ray: units at a time on the local cluster it starts (default 2); torch threads per "
        "worker are the cores divided by N",
    )
    p.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="ray: join the cluster that 'ray start --head' started there instead of starting one; "
        "every machine must see the run folder at the same path",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="discard a run folder of a different config (a folder that is not a run folder is never replaced)",
    )
    add_common(p)
    p.set_defaults(func=cmd_evaluate_protection)

    p = sub.add_parser(
        "report",
        help="rebuild the report of an evaluation run from its rows",
        description="Rebuild report.md and plots/ of an evaluate-protection run folder from its "
        "results.jsonl alone (nothing is re-run).",
    )
    p.add_argument("run", help="run folder of evaluate-protection")
    p.add_argument("--report-dir", help="write the report here (default: the run folder)")
    p.add_argument(
        "--made-with", help="the command line to print in the report (default: the commands its sessions recorded)"
    )
    p.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")
    p.add_argument(
        "--table",
        metavar="SECTION",
        help="print only the table under this section heading of the rebuilt report, writing "
        "nothing (what the docs' generated blocks quote)",
    )
    p.add_argument("--number", type=int, default=1, metavar="N", help="with --table: the N-th table of the section")
    add_common(p, device=False, data=False)
    p.set_defaults(func=cmd_report)
