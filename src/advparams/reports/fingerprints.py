"""The fingerprint sections of an evaluation report and their plots, rebuilt from
``fingerprint``, ``fp-suspect``, ``fp-model`` and (beside them) ``wm-attack`` rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from advparams.evaluation.config import EvalConfig
from advparams.evaluation.rows import ResultRow
from advparams.metrics.screening import roc_auc, roc_curve
from advparams.reports._table import fmt_num, fmt_pct, table


def suspect_label(attack: str | None, setting: Mapping[str, Any]) -> str:
    """How tables name a positive: the attack and its setting.

    Example:
        >>> suspect_label("prune", {"rate": 0.5})
        'prune rate=0.5'
    """
    parts = [str(attack)] + [f"{k}={v}" for k, v in sorted(setting.items())]
    return " ".join(parts)


def _tab(header: list[str], body: list[list[str]]) -> str:
    return table(header, body) if body else "_No rows yet._"


def _count(flags: Sequence[bool]) -> str:
    return f"{sum(bool(f) for f in flags)}/{len(flags)}" if flags else "–"


def _negatives(fp_rows: Sequence[ResultRow], same: str) -> tuple[dict[int, list[float]], list[dict[str, Any]]]:
    """Per seed, every negative's score; and every negative entry (with its seed)."""
    per_seed: dict[int, list[float]] = defaultdict(list)
    entries = []
    for r in fp_rows:
        for n in r.metrics.get("negatives", []):
            per_seed[r.seed].append(float(n["score"]))
            entries.append({**n, "owner_seed": r.seed, "same": n["label"] == same})
    return per_seed, entries


def _auc(pos: Mapping[int, list[float]], neg: Mapping[int, list[float]]) -> list[float]:
    """ROC-AUC of each seed's positives against that seed's negatives (the seed's fingerprint)."""
    return [roc_auc(neg[s], pos[s]) for s in sorted(pos) if pos[s] and neg.get(s)]


def _verification_cells(rs: Sequence[ResultRow], negatives: Mapping[int, list[float]]) -> list[str]:
    """Score, seeds verified and ROC-AUC against ``negatives`` of one kind of suspect."""
    pos = {r.seed: [float(r.metrics["score"])] for r in rs}
    return [
        fmt_num([r.metrics["score"] for r in rs], 3),
        _count([r.metrics["verified"] for r in rs]),
        fmt_num(_auc(pos, negatives), 3),
    ]


def fingerprint_sections(by_kind: Mapping[str, list[ResultRow]], config: EvalConfig) -> list[str]:
    """The Markdown lines of the fingerprint sections (none without a ``fingerprints`` section)."""
    section = config.fingerprints
    if section is None:
        return []
    titles = [s.title for s in section.schemes]
    fp_rows: dict[str, list[ResultRow]] = defaultdict(list)
    for r in by_kind.get("fingerprint", []):
        fp_rows[str(r.scheme)].append(r)
    suspects: dict[tuple[str, str], list[ResultRow]] = defaultdict(list)
    kinds: list[str] = []
    for r in sorted(by_kind.get("fp-suspect", []), key=lambda r: r.seed):
        label = suspect_label(r.attack, r.setting)
        suspects[(str(r.scheme), label)].append(r)
        if label not in kinds:
            kinds.append(label)
    others = ", ".join(f"{o.count} {o.title}" for o in section.other_models) or "none"
    out = ["## Ownership fingerprints", ""]
    out.append(
        f"A fingerprint is taken of each seed's model (the model is not changed) on probes drawn from the owner's "
        f"training data. Its threshold is calibrated on the {config.null_models} null models (seeds 1000, ...) at a "
        f"false-positive rate of {section.fpr:g} (a normal fit to their scores, never at or below the highest). "
        f"*Negatives*, held out from calibration: {section.negatives} independently trained {config.model} models "
        f"(seeds 2000, ...) and {others} (seeds 3000, ...). *Positives*: the seed's model itself and the models the "
        "attacks derive from it. *Verified*: seeds whose suspect scores at or above the threshold (the TPR at the "
        "calibrated threshold); *AUC*: ROC area of the suspect's score against the negatives' scores for the same "
        "fingerprint, mean over seeds; *acc %*: the suspect's test accuracy. InFIP's score is the mean SSIM of DTD "
        "fingerprint images; IPGuard's is the matching rate of labels on its boundary points. The InFIP paper "
        "(arXiv 2210.07481) reports robustness to fine-tuning, pruning, watermark overwriting and an adaptive attack "
        "without numbers we could see; IPGuard (AsiaCCS 2021) reports matching rates of positives above those of "
        "independent models on CIFAR-10 and ImageNet."
    )
    out.append("")
    header = ["suspect", "acc %"]
    for t in titles:
        header += [f"{t} score", f"{t} verified", f"{t} AUC"]
    body = []
    neg_by_scheme = {t: _negatives(fp_rows.get(t, []), config.model) for t in titles}
    owners = fp_rows.get(titles[0], [])
    if owners:
        row = ["owner's model", fmt_pct([r.accuracy for r in owners])]
        for t in titles:
            rs = fp_rows.get(t, [])
            row += _verification_cells(rs, neg_by_scheme[t][0])
        body.append(row)
    for kind in kinds:
        first = next((suspects[(t, kind)] for t in titles if suspects.get((t, kind))), [])
        row = [kind, fmt_pct([r.accuracy for r in first])]
        for t in titles:
            rs = suspects.get((t, kind), [])
            row += _verification_cells(rs, neg_by_scheme[t][0])
        body.append(row)
    models = defaultdict(list)
    for r in by_kind.get("fp-model", []):
        models[str(r.scheme)].append(r.accuracy)
    for label in dict.fromkeys(e["label"] for t in titles for e in neg_by_scheme[t][1]):
        row = [f"negatives: {label}", fmt_pct(models.get(label, []))]
        for t in titles:
            es = [e for e in neg_by_scheme[t][1] if e["label"] == label]
            row += [fmt_num([e["score"] for e in es], 3), _count([e["verified"] for e in es]) + " (false)", "–"]
        body.append(row)
    out += ["### Verification of copies and strangers", "", _tab(header, body), ""]

    out += ["### Thresholds and null models", ""]
    body = []
    for t in titles:
        rs = fp_rows.get(t, [])
        if not rs:
            continue
        nulls = [float(v) for r in rs for v in r.metrics["null_scores"]]
        fps = sum(int(r.metrics["negative_false_positives"]) for r in rs)
        total = sum(len(r.metrics["negatives"]) for r in rs)
        body.append(
            [
                t,
                str(rs[0].metrics["probes"]),
                fmt_num([r.metrics["threshold"] for r in rs], 3),
                fmt_num(nulls, 3),
                f"{fps}/{total}",
                fmt_num([r.metrics["extract_seconds"] for r in rs], 2),
                fmt_num([r.metrics["verify_seconds"] for r in rs], 3),
            ]
        )
    header = [
        "fingerprint",
        "probes",
        "threshold",
        "null scores",
        "false positives (negatives)",
        "extract s",
        "verify s/model",
    ]
    out += [_tab(header, body), ""]
    out.append(
        "_Times: extraction of one fingerprint and verification of one model (mean over all models verified), "
        "on this machine._"
    )
    out.append("")

    locks = [(t, r) for t in titles for r in fp_rows.get(t, []) if "then_lock" in r.metrics]
    if locks:
        scheme = locks[0][1].metrics["then_lock"]["scheme"]
        out += [f"### Locked with {scheme}, then unlocked", ""]
        out.append(
            "Is a fingerprint usable on a model that was locked and unlocked again? The unlocked model is "
            "bit-exact, so it must verify; the locked model (what an unauthorised holder has) is verified too."
        )
        out.append("")
        body = []
        for t in titles:
            ms = [r.metrics["then_lock"] for tt, r in locks if tt == t]
            body.append(
                [
                    t,
                    fmt_pct([m["locked_accuracy"] for m in ms]),
                    fmt_num([m["locked_score"] for m in ms], 3),
                    _count([m["locked_verified"] for m in ms]),
                    fmt_num([m["unlocked_score"] for m in ms], 3),
                    _count([m["unlocked_verified"] for m in ms]),
                    _count([m["unlocked_bit_exact"] for m in ms]),
                ]
            )
        header = [
            "fingerprint",
            "locked acc %",
            "locked score",
            "locked verified",
            "unlocked score",
            "unlocked verified",
            "bit-exact",
        ]
        out += [_tab(header, body), ""]

    wm = by_kind.get("wm-attack", [])
    if wm and config.watermarks:
        out += ["### The watermark beside them, under the same attacks", ""]
        out.append(
            "The same attacks on the watermarked model of each seed (see the watermark sections): verified "
            "seeds of each watermark beside those of each fingerprint."
        )
        out.append("")
        wm_by: dict[tuple[str, str], list[ResultRow]] = defaultdict(list)
        for r in wm:
            wm_by[(str(r.scheme), suspect_label(r.attack, r.setting))].append(r)
        marks = [w.title for w in config.watermarks]
        header = ["attack"] + [f"{w} verified" for w in marks] + [f"{t} verified" for t in titles]
        body = []
        for kind in kinds:
            row = [kind]
            row += [_count([r.metrics.get("verified", False) for r in wm_by.get((w, kind), [])]) for w in marks]
            row += [_count([r.metrics["verified"] for r in suspects.get((t, kind), [])]) for t in titles]
            body.append(row)
        out += [_tab(header, body), ""]
    return out


# -- plots --------------------------------------------------------------------------------


def spread(n: int, width: float) -> list[float]:
    """Sideways offsets of ``n`` dots in one column, evenly over ``width`` (so that equal
    scores, e.g. three seeds at 1.0, still show as three dots).

    Example:
        >>> spread(3, 0.2), spread(1, 0.2)
        ([-0.1, 0.0, 0.1], [0.0])
    """
    if n < 2:
        return [0.0] * n
    return [round(-width / 2 + width * k / (n - 1), 9) for k in range(n)]


def fingerprint_plots(rows: Sequence[ResultRow], config: EvalConfig, folder: Path, plt: Any) -> list[str]:
    """``fp-scores.png`` (every score by suspect, against the negatives and the threshold),
    ``fp-hist.png`` (histograms of the positives by attack against the negatives) and
    ``fp-roc.png`` (ROC per fingerprint, one curve per kind of positive, seeds pooled;
    identical curves drawn once, named together); none with fewer than two scores."""
    import textwrap

    from matplotlib.lines import Line2D

    from advparams.reports.plotting import same_curves, save

    section = config.fingerprints
    if section is None:
        return []
    titles = [s.title for s in section.schemes]
    fp_rows: dict[str, list[ResultRow]] = defaultdict(list)
    for r in rows:
        if r.kind == "fingerprint":
            fp_rows[str(r.scheme)].append(r)
    pos: dict[str, dict[str, list[float]]] = {t: defaultdict(list) for t in titles}
    for t in titles:  # the owner's own model first
        pos[t]["owner's model"] = [float(r.metrics["score"]) for r in fp_rows.get(t, [])]
    for r in rows:
        if r.kind == "fp-suspect" and str(r.scheme) in pos:
            pos[str(r.scheme)][suspect_label(r.attack, r.setting)].append(float(r.metrics["score"]))
    negs = {t: _negatives(fp_rows.get(t, []), config.model)[1] for t in titles}
    titles = [t for t in titles if len([v for vals in pos[t].values() for v in vals]) + len(negs[t]) >= 2]
    if not titles:
        return []
    made: list[str] = []
    threshold_line: dict[str, Any] = {"color": "tab:red", "lw": 0.9, "ls": "--"}

    fig, axes = plt.subplots(len(titles), 1, figsize=(9, 3.3 * len(titles) + 0.6), squeeze=False, layout="constrained")
    for ax, t in zip(axes[:, 0], titles, strict=True):
        groups = [(k, v, "tab:blue") for k, v in pos[t].items() if v]
        labels = dict.fromkeys(e["label"] for e in negs[t])
        for lab in labels:
            groups.append((f"negatives: {lab}", [e["score"] for e in negs[t] if e["label"] == lab], "tab:grey"))
        for i, (_, vals, colour) in enumerate(groups):
            dx = spread(len(vals), 0.5 if len(vals) > 6 else 0.3)
            ax.scatter([i + d for d in dx], sorted(vals), s=16, color=colour, alpha=0.8)
        for th in {round(float(r.metrics["threshold"]), 4) for r in fp_rows.get(t, [])}:
            ax.axhline(th, **threshold_line)
        ax.set_xticks(range(len(groups)), [g[0] for g in groups], rotation=30, ha="right")
        ax.set_ylabel(f"{t} score")
        ax.set_title(t)
        ax.grid(alpha=0.3, axis="y")
    handles = [
        Line2D([], [], ls="", marker="o", color="tab:blue", label="positives (copies)"),
        Line2D([], [], ls="", marker="o", color="tab:grey", label="negatives (other models)"),
        Line2D([], [], **threshold_line, label="threshold (each seed)"),
    ]
    fig.legend(handles=handles, loc="outside right upper")
    fig.suptitle("Fingerprint scores of every suspect (one dot per seed or model)")
    save(fig, plt, folder, "fp-scores.png", made)

    attacks = list(dict.fromkeys(n.split(" ")[0] if n != "owner's model" else n for t in titles for n in pos[t]))
    hue = {a: f"C{i % 10}" for i, a in enumerate(attacks)}
    fig, axes = plt.subplots(1, len(titles), figsize=(min(10.0, 4.0 * len(titles) + 1.8), 3.8), squeeze=False,
                             layout="constrained")  # fmt: skip
    for i, (ax, t) in enumerate(zip(axes[0], titles, strict=True)):
        by_attack: dict[str, list[float]] = defaultdict(list)
        for name, vals in pos[t].items():
            by_attack[name.split(" ")[0] if name != "owner's model" else name] += vals
        neg = [e["score"] for e in negs[t]]
        every = neg + [v for vals in by_attack.values() for v in vals]
        lo, hi = min(every), max(every)
        bins = [lo + (hi - lo) * k / 24 for k in range(25)] if hi > lo else 10
        names = [a for a in attacks if by_attack.get(a)]
        ax.hist([by_attack[n] for n in names], bins=bins, stacked=True, label=names, alpha=0.85,
                color=[hue[n] for n in names])  # fmt: skip
        if neg:
            ax.hist(neg, bins=bins, color="black", histtype="step", lw=1.3, label="negatives")
        for th in {round(float(r.metrics["threshold"]), 4) for r in fp_rows.get(t, [])}:
            ax.axvline(th, **threshold_line)
        ax.set_title(f"{t}: positives stacked by attack")
        ax.set_xlabel(f"{t} score")
        if i == 0:
            ax.set_ylabel("models (count)")
    keyed = {lab: h for ax in axes.flat for h, lab in zip(*ax.get_legend_handles_labels(), strict=True)}
    keyed["threshold (each seed)"] = Line2D([], [], **threshold_line)
    fig.legend(list(keyed.values()), list(keyed), loc="outside right upper")
    save(fig, plt, folder, "fp-hist.png", made)

    styles = ("-", "--", "-.", ":")
    fig, axes = plt.subplots(1, len(titles), figsize=(min(10.0, 4.6 * len(titles)), 5.6), squeeze=False,
                             layout="constrained")  # fmt: skip
    for i, (ax, t) in enumerate(zip(axes[0], titles, strict=True)):
        neg = [e["score"] for e in negs[t]]
        kinds = [(n, v) for n, v in pos[t].items() if v and n != "owner's model"]
        if not neg or not kinds:
            ax.axis("off")
            continue
        curves = [roc_curve(neg, v) for _, v in kinds]
        for j, group in enumerate(same_curves(curves)):
            fpr, tpr = curves[group[0]]
            label = "; ".join(kinds[k][0] for k in group)
            ax.plot([100 * v for v in fpr], [100 * v for v in tpr], lw=1.4, ls=styles[j % len(styles)],
                    label="\n".join(textwrap.wrap(label, 48)))  # fmt: skip
        ax.plot([0, 100], [0, 100], color="grey", lw=0.7, ls=":")
        ax.set_title(f"{t} (seeds pooled)")
        ax.set_xlabel("negatives verified (%)")
        if i == 0:
            ax.set_ylabel("positives verified (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), fontsize=7,
                  title="positives (one line per identical curve)", title_fontsize=7)  # fmt: skip
    save(fig, plt, folder, "fp-roc.png", made)
    return made


__all__ = ["fingerprint_plots", "fingerprint_sections", "spread", "suspect_label"]
