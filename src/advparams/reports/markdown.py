"""Markdown report of an evaluation, rebuilt from its result rows alone: the house's
header (data, model, seeds, wall time, the commands that made it), then each family's
section (:attr:`advparams.house.Family.report`) in family order, then the plots."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from advparams.evaluation.config import EvalConfig
from advparams.evaluation.rows import ResultRow
from advparams.house import families

MARKER = "<!-- advparams evaluation report: rebuilt from results.jsonl; edits are overwritten -->"


def session_commands(sessions: Sequence[ResultRow]) -> list[str]:
    """The command lines the ``session`` rows kept, each once, in the order first used."""
    return list(dict.fromkeys(c for r in sessions if isinstance(c := r.metrics.get("command"), str) and c))


def build_report(
    rows: Sequence[ResultRow],
    config: EvalConfig,
    *,
    command: str | None = None,
    plots: Sequence[str] = (),
    commands: Sequence[str] | None = None,
) -> str:
    """The Markdown report: every table from ``rows``; ``plots`` are relative image paths.
    ``commands`` (or one ``command``) are printed as what made the run; default: the
    commands its sessions kept."""
    by_kind: dict[str, list[ResultRow]] = defaultdict(list)
    for r in rows:
        by_kind[r.kind].append(r)
    out = [MARKER, f"# Protection evaluation: {config.name}", ""]
    seeds = ", ".join(str(s) for s in config.seeds)
    out.append(
        f"Data set **{config.dataset}**, model **{config.model}**, seeds {seeds}; accuracies are test "
        f"accuracies in percent, mean ± sample std over the seeds. Every number below is rebuilt from "
        f"`results.jsonl` by `advparams report`."
    )
    out.append("")
    sessions = by_kind["session"]
    if sessions:
        total = sum(r.seconds for r in sessions)
        env = sessions[-1].metrics.get("environment", {})
        stopped = sum(1 for r in sessions if r.metrics.get("interrupted"))
        out.append(
            f"**Wall-clock time of the whole evaluation: {total / 60:.1f} min** over {len(sessions)} "
            f"session(s) ({', '.join(f'{r.seconds / 60:.1f}' for r in sessions)} min"
            f"{f'; {stopped} interrupted' if stopped else ''}), on "
            f"{env.get('cpu_count', '?')} CPU core(s), {env.get('threads', '?')} torch thread(s), device "
            f"{env.get('device', '?')}, torch {env.get('torch', '?')}, advparams {env.get('advparams', '?')}."
        )
        out.append("")
    made = list(commands) if commands else [command] if command else session_commands(sessions)
    if made:
        out += ["Made with:", "", "```", *made, "```", ""]

    for family in families():
        if family.report is not None:
            out += family.report(by_kind, config)

    if plots:
        out += ["## Plots", ""]
        out += [f"![{p}]({p})" for p in plots]
        out.append("")
    return "\n".join(out)
