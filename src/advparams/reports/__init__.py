"""Reports of evaluations: Markdown tables and PNG plots, rebuilt from result rows."""

from __future__ import annotations

import os
from pathlib import Path

from advparams.errors import AdvParamsError, OutputExistsError
from advparams.evaluation.run import CONFIG_FILE, RESULTS_FILE, open_run
from advparams.files import LIMITS, atomic_write_bytes, read_file, read_marker, resolve, write_marker
from advparams.reports._table import fmt_num, fmt_pct, mean_std, table
from advparams.reports.markdown import MARKER, build_report

REPORT_FILE = "report.md"
REPORT_COMMAND = "report"
MADE_WITH_FILE = "made-with.txt"  # the commands a report prints as what made the run, one per line


def write_report(
    run_dir: str | Path,
    report_dir: str | Path | None = None,
    *,
    command: str | None = None,
    plots: bool = True,
) -> Path:
    """Rebuilds ``report.md`` (and ``plots/``) of a run folder from its rows.

    Args:
        run_dir: the evaluation's run folder (``config.yaml`` + ``results.jsonl``).
        report_dir: where to write the report; default: ``run_dir``. The resolved
            config and the rows are copied there too, so the report stands alone.
        command: the command line to print in the report, kept in the report folder's
            ``made-with.txt`` for later rebuilds (default: that file's, else the ones
            the run's ``session`` rows kept).
        plots: also draw the PNG plots (needs matplotlib).

    Returns:
        The path of the report.
    """
    folder = open_run(run_dir)
    run = folder.path
    config, rows = folder.read_config(), folder.rows()
    dest = resolve(report_dir) if report_dir is not None else resolve(run)
    dest.mkdir(parents=True, exist_ok=True)
    report_path = dest / REPORT_FILE
    _check_report_dir(dest, resolve(run))
    kept = _made_with(run)
    commands = [command] if command else kept
    names: list[str] = []
    if plots:
        from advparams.reports.plots import make_plots

        names = [f"plots/{n}" for n in make_plots(rows, config, dest / "plots")]
    text = build_report(rows, config, commands=commands, plots=names)
    atomic_write_bytes(report_path, (text + "\n").encode(), force=True)
    if commands and (commands != kept or dest != resolve(run)):
        atomic_write_bytes(dest / MADE_WITH_FILE, "".join(f"{c}\n" for c in commands).encode(), force=True)
    if dest != resolve(run):
        write_marker(dest, REPORT_COMMAND)
        for name in (CONFIG_FILE, RESULTS_FILE):
            data = read_file(run / name, what="run file", limit=LIMITS["rows"])
            atomic_write_bytes(dest / name, data, force=True)
    return report_path


def report_text(run_dir: str | Path) -> str:
    """The Markdown of a run's report, rebuilt from its rows in memory (nothing written, no plots
    drawn: plot links are left out)."""
    folder = open_run(run_dir)
    return build_report(folder.rows(), folder.read_config(), commands=_made_with(folder.path), plots=[])


def report_table(run_dir: str | Path, heading: str, number: int = 1) -> str:
    """The ``number``-th Markdown table under the section titled ``heading`` of a run's
    report, rebuilt from its rows: what the docs' generated blocks quote.

    Raises:
        AdvParamsError: no such section, or fewer tables in it; the message lists the sections.
    """
    lines = report_text(run_dir).splitlines()
    titles = [line.lstrip("#").strip() for line in lines if line.startswith("#")]
    want = heading.strip().lower()
    starts = [i for i, line in enumerate(lines) if line.startswith("#") and line.lstrip("#").strip().lower() == want]
    if not starts:
        raise AdvParamsError(f"no section {heading!r} in the report of {run_dir}; its sections: " + "; ".join(titles))
    tables: list[list[str]] = []
    previous = ""
    for line in lines[starts[0] + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append(line)
        previous = line
    if number < 1 or number > len(tables):
        raise AdvParamsError(f"section {heading!r} of the report of {run_dir} has {len(tables)} table(s), not {number}")
    return "\n".join(tables[number - 1])


def _made_with(run: Path) -> list[str] | None:
    """The commands kept in the run folder's ``made-with.txt`` (None: no such file)."""
    path = run / MADE_WITH_FILE
    if not path.exists():
        return None
    text = read_file(path, what="made-with file", limit=LIMITS["run-record"]).decode("utf-8", "replace")
    return [line for line in text.splitlines() if line.strip()] or None


def _written_by_us(report_path: Path) -> bool:
    try:
        head = read_file(report_path, what="report", limit=LIMITS["run-record"]).splitlines()[:1]
    except AdvParamsError:
        return False
    return head == [MARKER.encode()]


def _check_report_dir(dest: Path, run: Path) -> None:
    """A report folder other than the run holds only what ``report`` wrote there before:
    the files it writes are never replaced in a folder of someone else's (not with --force)."""
    if dest == run or read_marker(dest) == REPORT_COMMAND:
        return
    report_path = dest / REPORT_FILE
    if os.path.lexists(report_path) and _written_by_us(report_path):
        return  # a report folder from before markers
    ours = [REPORT_FILE, CONFIG_FILE, RESULTS_FILE, "plots"]
    taken = [n for n in ours if os.path.lexists(dest / n)]
    if taken:
        raise OutputExistsError(
            f"{dest} holds {', '.join(taken)} that advparams did not write; they are never replaced: "
            "choose another --report-dir"
        )


__all__ = [
    "MARKER",
    "REPORT_FILE",
    "build_report",
    "fmt_num",
    "fmt_pct",
    "mean_std",
    "report_table",
    "report_text",
    "table",
    "write_report",
]
