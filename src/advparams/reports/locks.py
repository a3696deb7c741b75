"""The locks family's report sections: locking, stealth, the budget curve and one table
per attack, rebuilt from the ``clean``, ``lock``, ``stealth``, ``budget``, ``attack`` and
``baseline`` rows."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from advparams.evaluation.config import EvalConfig
from advparams.evaluation.rows import ResultRow
from advparams.reports._table import fmt_num, fmt_pct
from advparams.reports._table import table as _table


def _gap(a: float | None, b: float | None) -> float | None:
    """``a - b`` in percentage points, or None when either is missing."""
    return None if a is None or b is None else 100.0 * (a - b)


def _setting_text(setting: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "default"


def _pivot(aspec: Any, schemes: Sequence[str], attacks: dict[Any, list[ResultRow]], detailed: bool) -> str | None:
    """Accuracy after the attack as scheme x value table, for a sweep over one numeric
    option with at least 4 values (e.g. pruning rates); None where a detailed table is
    needed (baselines, detection scores) or the grid is not such a sweep."""
    numeric = [k for k, v in aspec.grid.items() if len(v) >= 4 and all(isinstance(x, (int, float)) for x in v)]
    if detailed or not numeric:
        return None
    x_key = numeric[0]
    others = [k for k in aspec.grid if k != x_key]
    xs = list(aspec.grid[x_key])
    combos = []
    for setting in aspec.settings():
        rest = {k: setting[k] for k in others}
        if rest not in combos:
            combos.append(rest)
    header = ["scheme", *others, *[f"{x_key}={x}" for x in xs]]
    table = []
    for s in schemes:
        for rest in combos:
            cells = []
            for x in xs:
                k = json.dumps({**rest, x_key: x}, sort_keys=True)
                cells.append(fmt_pct([r.accuracy for r in attacks.get((aspec.name, s, k), [])]))
            if any(c != "–" for c in cells):
                table.append([s, *[str(rest[o]) for o in others], *cells])
    return "Test accuracy % after the attack:\n\n" + _table(header, table)


def _ppl(values: Sequence[float | None]) -> str:
    return fmt_num([v for v in values if v is not None], 2)


def _perplexity_section(by_kind: Mapping[str, list[ResultRow]], config: EvalConfig, schemes: list[str]) -> list[str]:
    """A language model's locks and attacks in test perplexity, against the unigram bar
    (docs/language-models.md); the tables above give its next-token accuracy."""
    clean = {r.seed: r.metrics.get("perplexity") for r in by_kind["clean"]}
    out = [
        "## Perplexity",
        "",
        "The data is a language model's: the accuracies above are next-token accuracies; here its test "
        "perplexity, mean ± std over the seeds. A locked model counts as useless at or above the unigram bar "
        "(the perplexity of a model that knows only the corpus' token frequencies).",
        "",
    ]
    table = []
    for s in schemes:
        rs = sorted((r for r in by_kind["lock"] if r.scheme == s and "perplexity" in r.metrics), key=lambda r: r.seed)
        if not rs:
            continue
        bar = [r.metrics.get("perplexity_bar") for r in rs]
        above = sum(b is not None and r.metrics["perplexity"] >= b for r, b in zip(rs, bar, strict=True))
        table.append(
            [
                s,
                _ppl([clean.get(r.seed) for r in rs]),
                _ppl([r.metrics["perplexity"] for r in rs]),
                f"{min(r.metrics['perplexity'] for r in rs):.2f}",
                _ppl(bar),
                f"{above}/{len(rs)}",
            ]
        )
    header = ["scheme", "clean", "locked", "lowest locked", "unigram bar", "at or above the bar"]
    out += [_table(header, table), ""]
    rows = []
    for aspec in config.attacks:
        for k in (json.dumps(x, sort_keys=True) for x in aspec.settings()):
            scratch = [
                b for b in by_kind["baseline"] if b.attack == aspec.name and json.dumps(b.setting, sort_keys=True) == k
            ]
            for s in schemes:
                rs = [
                    r
                    for r in by_kind["attack"]
                    if r.attack == aspec.name and r.scheme == s and json.dumps(r.setting, sort_keys=True) == k
                ]
                if any("perplexity" in r.metrics for r in rs):
                    after = _ppl([r.metrics.get("perplexity") for r in rs])
                    base = _ppl([b.metrics.get("perplexity") for b in scratch])
                    rows.append([aspec.name, s, _setting_text(json.loads(k)), after, base])
    if rows:
        header = ["attack", "scheme", "setting", "after the attack", "scratch (same samples)"]
        out += ["Test perplexity after each attack:", "", _table(header, rows), ""]
    return out


def lock_sections(by_kind: Mapping[str, list[ResultRow]], config: EvalConfig) -> list[str]:
    """The lock sections of the report (none for an evaluation without schemes)."""
    schemes = [s.title for s in config.schemes]
    if not schemes:  # a watermark-only evaluation has none
        return []
    out: list[str] = []
    # Locking.
    clean = {r.seed: r.accuracy for r in by_kind["clean"]}
    locks = defaultdict(list)
    for r in by_kind["lock"]:
        locks[r.scheme].append(r)
    out += ["## Locking", ""]
    table = []
    for s in schemes:
        rs = locks.get(s, [])
        if not rs:
            continue
        table.append(
            [
                s,
                fmt_pct([clean.get(r.seed) for r in rs]),
                fmt_pct([r.accuracy for r in rs]),
                fmt_pct([r.metrics.get("unlocked_accuracy") for r in rs]),
                "yes" if all(r.metrics.get("bit_exact") for r in rs) else "**no**",
                fmt_num([r.metrics["params_changed"] for r in rs], 1),
                " / ".join(str(r.metrics["params_changed"]) for r in sorted(rs, key=lambda r: r.seed)),
                fmt_num([r.metrics["proportion_percent"] for r in rs], 4),
                fmt_num([r.seconds for r in rs], 2),
            ]
        )
    out.append(
        _table(
            [
                "scheme",
                "clean %",
                "locked %",
                "unlocked %",
                "bit-exact",
                "changed",
                "changed per seed",
                "share %",
                "lock s",
            ],
            table,
        )
    )
    out.append("")
    if any("perplexity" in r.metrics for r in by_kind["lock"]):
        out += _perplexity_section(by_kind, config, schemes)

    # Stealth.
    if by_kind["stealth"]:
        st = defaultdict(list)
        for r in by_kind["stealth"]:
            st[r.scheme].append(r.metrics)
        out += [
            "## Stealth",
            "",
            "Per touched tensor, a two-sample KS test of locked against original values (rejected: p < 0.05; "
            "counts over all seeds); for each changed value, its |z-score| in the locked tensor and whether it "
            "lies in the tensor's outer 1% (lowest or highest 1% of values).",
            "",
        ]
        table = []
        for s in schemes:
            ms = st.get(s, [])
            if not ms:
                continue
            table.append(
                [
                    s,
                    f"{sum(m['tensors_rejected'] for m in ms)} / {sum(m['tensors'] for m in ms)}",
                    f"{min(m['min_p_value'] for m in ms):.3g}",
                    fmt_num([m["mean_abs_z"] for m in ms]),
                    fmt_num([m["max_abs_z"] for m in ms]),
                    fmt_num([100 * m["share_extreme_1pct"] for m in ms], 1),
                ]
            )
        out.append(
            _table(
                ["scheme", "KS rejected / tensors", "min KS p", "mean abs z", "max abs z", "in outer 1 % (%)"],
                table,
            )
        )
        out.append("")

    # Budgets.
    if by_kind["budget"]:
        out += [
            "## Locked accuracy against the number of changed values",
            "",
            "Each scheme locked again with each budget, without early stop (AdvParams and NNSplitter: "
            "`target_accuracy: 0`; SFGE's budget is per layer; schemes with `match_params` use the matched "
            "scheme's count at that budget).",
            "",
        ]
        bud = defaultdict(list)
        for r in by_kind["budget"]:
            bud[(r.scheme, r.setting["budget"])].append(r)
        table = []
        for s in schemes:
            for b in config.budgets:
                rs = bud.get((s, b), [])
                if rs:
                    table.append(
                        [
                            s,
                            str(b),
                            fmt_num([r.metrics["params_changed"] for r in rs], 1),
                            fmt_pct([r.accuracy for r in rs]),
                        ]
                    )
        out.append(_table(["scheme", "budget", "changed", "locked %"], table))
        out.append("")

    # Attacks.
    attacks = defaultdict(list)
    for r in by_kind["attack"]:
        attacks[(r.attack, r.scheme, json.dumps(r.setting, sort_keys=True))].append(r)
    baselines = defaultdict(list)
    for r in by_kind["baseline"]:
        baselines[(r.attack, r.scheme, json.dumps(r.setting, sort_keys=True))].append(r)
    locked_acc = {(r.scheme, r.seed): r.accuracy for r in by_kind["lock"]}
    for aspec in config.attacks:
        settings = [json.dumps(s, sort_keys=True) for s in aspec.settings()]
        out += [f"## Attack: {aspec.name}", ""]
        if aspec.options:
            out += [f"Fixed options: `{json.dumps(dict(aspec.options), sort_keys=True)}`.", ""]
        has_baseline = any(baselines.get((aspec.name, "scratch", k)) for k in settings)
        has_detection = any(
            "precision" in r.metrics for k in settings for s in schemes for r in attacks.get((aspec.name, s, k), [])
        )
        header = ["scheme", "setting", "locked %", "after attack %", "recovered (pp)"]
        if has_baseline:
            header += ["scratch %", "advantage (pp)"]
        if has_detection:
            header += ["precision %", "recall %", "suspects"]
        header += ["attack s"]
        table = []
        for s in schemes:
            for k in settings:
                rs = attacks.get((aspec.name, s, k), [])
                if not rs:
                    continue
                row = [
                    s,
                    _setting_text(json.loads(k)),
                    fmt_pct([locked_acc.get((s, r.seed)) for r in rs]),
                    fmt_pct([r.accuracy for r in rs]),
                    fmt_num([_gap(r.accuracy, locked_acc.get((s, r.seed))) for r in rs]),
                ]
                if has_baseline:
                    scratch = {b.seed: b.accuracy for b in baselines.get((aspec.name, "scratch", k), [])}
                    row += [
                        fmt_pct([scratch.get(r.seed) for r in rs]),
                        fmt_num([_gap(r.accuracy, scratch.get(r.seed)) for r in rs]),
                    ]
                if has_detection:
                    row += [
                        fmt_num([100 * r.metrics["precision"] for r in rs if "precision" in r.metrics], 1),
                        fmt_num([100 * r.metrics["recall"] for r in rs if "recall" in r.metrics], 1),
                        fmt_num([r.metrics.get("suspects") for r in rs], 0),
                    ]
                row.append(fmt_num([r.seconds for r in rs], 2))
                table.append(row)
        pivot = _pivot(aspec, schemes, attacks, has_baseline or has_detection)
        if pivot:
            out += [pivot, ""]
        else:
            out.append(_table(header, table) if table else "_No rows yet._")
            if has_baseline:
                out += ["", "The first scheme's attack time includes training the shared scratch model."]
            out.append("")
    return out


def lock_plots(rows: Sequence[ResultRow], config: EvalConfig, folder: Any, plt: Any) -> list[str]:
    """``budget.png``, ``<attack>.png`` for an attack that sweeps a numeric option and
    ``hist-<scheme>.png`` (see :func:`advparams.reports.plots.make_plots`)."""
    from advparams.reports.plots import attack_figure, budget_figure, hist_figure
    from advparams.reports.plotting import save

    made: list[str] = []
    clean = [r.accuracy for r in rows if r.kind == "clean" and r.accuracy is not None]
    locks = [r for r in rows if r.kind == "lock"]
    chance = locks[0].metrics.get("target_accuracy", 0.12) - 0.02 if locks else None
    refs = (clean, chance)
    fig = budget_figure(plt, rows, config, refs)
    if fig is not None:
        save(fig, plt, folder, "budget.png", made)
    for aspec in config.attacks:
        fig = attack_figure(plt, rows, config, aspec, refs)
        if fig is not None:
            save(fig, plt, folder, f"{aspec.name}.png", made)
    for r in rows:  # the first seed's, one row per scheme
        if r.kind == "histogram" and r.metrics:
            title = f"{r.scheme}, seed {r.seed}: weights of the touched tensors"
            save(hist_figure(plt, r.metrics, title), plt, folder, f"hist-{r.scheme}.png", made)
    return made


__all__ = ["lock_plots", "lock_sections"]
