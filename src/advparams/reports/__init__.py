"""Reports of evaluations: Markdown tables and PNG plots, rebuilt from result rows."""

from __future__ import annotations

from pathlib import Path

from advparams.errors import AdvParamsError, OutputExistsError
from advparams.evaluation.harness import CONFIG_FILE, RESULTS_FILE, _read_saved_config
from advparams.evaluation.rows import read_rows
from advparams.files import atomic_write_bytes
from advparams.reports._table import fmt_num, fmt_pct, mean_std
from advparams.reports.markdown import MARKER, build_report

REPORT_FILE = "report.md"


def write_report(
    run_dir: str | Path,
    report_dir: str | Path | None = None,
    *,
    command: str | None = None,
    plots: bool = True,
    force: bool = False,
) -> Path:
    """Rebuilds ``report.md`` (and ``plots/``) of a run folder from its rows.

    Args:
        run_dir: the evaluation's run folder (``config.yaml`` + ``results.jsonl``).
        report_dir: where to write the report; default: ``run_dir``. The resolved
            config and the rows are copied there too, so the report stands alone.
        command: the command line to print in the report.
        plots: also draw the PNG plots (needs matplotlib).
        force: overwrite a ``report.md`` that this toolkit did not write.

    Returns:
        The path of the report.
    """
    run = Path(run_dir)
    if not (run / RESULTS_FILE).exists() or not (run / CONFIG_FILE).exists():
        raise AdvParamsError(f"{run} is not an evaluation run (no {CONFIG_FILE} and {RESULTS_FILE})")
    config = _read_saved_config(run / CONFIG_FILE)
    rows = read_rows(run / RESULTS_FILE)
    dest = Path(report_dir) if report_dir is not None else run
    dest.mkdir(parents=True, exist_ok=True)
    report_path = dest / REPORT_FILE
    if report_path.exists() and not force:
        head = report_path.read_text(errors="replace").splitlines()[:1]
        if head != [MARKER]:
            raise OutputExistsError(f"{report_path} exists and was not written by advparams; pass --force")
    names: list[str] = []
    if plots:
        from advparams.reports.plots import make_plots

        names = [f"plots/{n}" for n in make_plots(rows, config, dest / "plots")]
    text = build_report(rows, config, command=command, plots=names)
    atomic_write_bytes(report_path, (text + "\n").encode(), force=True)
    if dest.resolve() != run.resolve():
        for name in (CONFIG_FILE, RESULTS_FILE):
            atomic_write_bytes(dest / name, (run / name).read_bytes(), force=True)
    return report_path


__all__ = ["MARKER", "REPORT_FILE", "build_report", "fmt_num", "fmt_pct", "mean_std", "write_report"]
