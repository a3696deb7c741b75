"""The backdoor-detection sections of an evaluation report and their plots, rebuilt from
``detection``, ``inspection``, ``sanitise`` and ``backdoor`` rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from advparams.evaluation.config import EvalConfig
from advparams.evaluation.rows import ResultRow
from advparams.reports._table import fmt_num, fmt_pct, table

# The adversarial-perturbation detector's paper (arXiv 2105.14259): detection % and mean L2.
PAPER_AP = {"fashion-mnist": (99.63, 2.8715), "cifar10": (99.76, 3.0513), "gtsrb": (99.91, 2.4362)}


def paper_detection(detector: str, dataset: str) -> str:
    """The paper's figure for this detector on this data set (or the nearest one)."""
    if detector == "adversarial":
        if dataset in PAPER_AP:
            rate, l2 = PAPER_AP[dataset]
            return f"{rate:.2f} % detected, L2 {l2:.2f}"
        return "99.76 % detected, L2 3.05 (CIFAR-10; not this data set)"
    if detector == "strip":
        return "worse and slower than the adversarial detector (Xue et al.); no figure"
    if detector == "neural-cleanse":
        return "the DCT backdoor is not detected by NC (Xue et al. 2022)"
    return "–"


def _tab(header: list[str], body: list[list[str]]) -> str:
    return table(header, body) if body else "_No rows yet._"


def _grouped(rows: Sequence[ResultRow]) -> dict[tuple[str, str], list[ResultRow]]:
    out: dict[tuple[str, str], list[ResultRow]] = defaultdict(list)
    for r in rows:
        out[(str(r.scheme), str(r.attack))].append(r)
    for rs in out.values():
        rs.sort(key=lambda r: r.seed)
    return out


def _backdoor_order(config: EvalConfig) -> list[str]:
    return [b.title for b in config.backdoors.attacks] if config.backdoors is not None else []


def detection_sections(by_kind: Mapping[str, list[ResultRow]], config: EvalConfig) -> list[str]:
    """The Markdown lines of the detection sections (none without a ``detection`` section)."""
    section = config.detection
    if section is None:
        return []
    det = _grouped(by_kind.get("detection", []))
    frrs = [f"{f:g}" for f in section.frrs]
    out = ["## Backdoor detection", ""]
    out.append(
        f"Each detector is fitted on the backdoored model with the defender's clean data (the last "
        f"{section.clean_samples} test images) and its threshold calibrated on held-out clean inputs for each "
        f"false-rejection rate (FRR); then the first {section.eval_samples} test images are scored clean and "
        "triggered (every sub-trigger, target-class images left out). *TPR*: triggered inputs flagged; *FPR*: "
        "clean scored inputs flagged (the calibrated FRR, measured on other images); *AUC*: area under the ROC "
        "curve; *L2*: the adversarial detector's perturbation norm in [0, 1] pixel units (universal: the one "
        "perturbation's norm on each input after clipping to the pixel range; per input: where the label moved, "
        "the norm that moved it, else the final one); *ms/image*: scoring time per input on this "
        "machine. The adversarial-perturbation paper (arXiv 2105.14259) reports 99.63 / 99.76 / 99.91 % "
        "detection with mean L2 2.87 / 3.05 / 2.44 on Fashion-MNIST / CIFAR-10 / GTSRB."
    )
    out.append("")
    body = []
    titles = [d.title for d in section.detectors]
    for b in _backdoor_order(config):
        for d in section.detectors:
            rs = det.get((b, d.title))
            if not rs:
                continue
            row = [b, d.title]
            row += [fmt_pct([r.metrics["tpr"][f] for r in rs]) for f in frrs]
            row.append(fmt_pct([r.metrics["fpr"][frrs[0]] for r in rs]))
            row.append(fmt_num([r.metrics["auc"] for r in rs], 3))
            if "triggered_l2" in rs[0].metrics:
                l2_clean = fmt_num([r.metrics["clean_l2"] for r in rs])
                row.append(f"{l2_clean} / {fmt_num([r.metrics['triggered_l2'] for r in rs])}")
            else:
                row.append("–")
            row.append(fmt_num([1000 * r.metrics["seconds_per_image"] for r in rs], 2))
            row.append(paper_detection(d.name, config.dataset))
            body.append(row)
    header = ["backdoor", "detector", *[f"TPR % @FRR {f}" for f in frrs], f"FPR % @{frrs[0]}", "AUC"]
    out += [_tab(header + ["L2 clean / triggered", "ms/image", "paper"], body), ""]

    natural = [
        (b, t)
        for b in _backdoor_order(config)
        for t in titles
        if det.get((b, t)) and "natural_tpr" in det[(b, t)][0].metrics
    ]
    if natural:
        out += ["### The paper's own rule: flag an input whose label does not move", ""]
        out.append(
            "The adversarial detector without calibration: an input is flagged when its label survives the "
            "perturbation (the rule's threshold: a margin of 0 for the universal perturbation, the budget for the "
            "per-input attacks, whose score is the norm that moved the label). *TPR* on triggered inputs, *FPR* on "
            "clean ones; *TPR (effective)* at the first calibrated rate counts only triggered inputs the model "
            "answers with the target."
        )
        out.append("")
        body = []
        for b, t in natural:
            rs = det[(b, t)]
            body.append(
                [
                    b,
                    t,
                    fmt_num([r.metrics["natural_threshold"] for r in rs], 2),
                    fmt_pct([r.metrics["natural_tpr"] for r in rs]),
                    fmt_pct([r.metrics["natural_fpr"] for r in rs]),
                    fmt_pct([r.metrics["tpr_effective"][frrs[0]] for r in rs]),
                ]
            )
        header = ["backdoor", "detector", "rule threshold", "TPR %", "FPR %", f"TPR (effective) % @{frrs[0]}"]
        out += [_tab(header, body), ""]

    out += _inspection_lines(by_kind, config, det)
    out += _sanitise_lines(by_kind, config)
    return out


def _inspection_lines(
    by_kind: Mapping[str, list[ResultRow]], config: EvalConfig, det: Mapping[tuple[str, str], list[ResultRow]]
) -> list[str]:
    section = config.detection
    assert section is not None
    inspectors = [d for d in section.detectors if _inspects(d.name)]
    if not inspectors:
        return []
    targets: dict[str, list[int]] = {}
    for r in by_kind.get("backdoor", []):
        targets.setdefault(str(r.scheme), list(r.metrics.get("info", {}).get("targets", [])))
    out = ["### Neural Cleanse: model inspection", ""]
    out.append(
        "Per label, the smallest mask that sends clean images there is reverse-engineered; the MAD anomaly index "
        "(1.4826 x median absolute deviation) of the mask norms flags labels below the median with an index "
        "above 2. *flagged*: models with a flagged label; *found target*: models whose most anomalous label is "
        "a backdoor target. The clean models are the seeds' own and the null models. Paper (Xue et al. 2022): "
        "the DCT-steganography backdoor is not detected by Neural Cleanse."
    )
    out.append("")
    body = []
    for d in inspectors:
        for b in _backdoor_order(config):
            rs = det.get((b, d.title))
            if not rs:
                continue
            idx = [r.metrics["inspection"]["max_anomaly_index"] for r in rs]
            flagged = sum(bool(r.metrics["inspection"]["flagged"]) for r in rs)
            found = sum(r.metrics["inspection"]["suspect"] in targets.get(b, []) for r in rs)
            body.append([d.title, b, fmt_num(idx, 2), f"{flagged}/{len(rs)}", f"{found}/{len(rs)}"])
        clean = [r for r in by_kind.get("inspection", []) if r.attack == d.title]
        if clean:
            idx = [r.metrics["inspection"]["max_anomaly_index"] for r in clean]
            flagged = sum(bool(r.metrics["inspection"]["flagged"]) for r in clean)
            each = ", ".join(f"{v:.2f}" for v in idx)
            body.append(
                [d.title, f"clean models ({len(clean)})", f"{fmt_num(idx, 2)} ({each})", f"{flagged}/{len(clean)}", "–"]
            )
    out += [_tab(["detector", "model", "max anomaly index", "flagged", "found target"], body), ""]
    return out


def _inspects(name: str) -> bool:
    from advparams.detectors import DETECTORS

    return bool(DETECTORS.get(name).inspects_model)


def _sanitise_lines(by_kind: Mapping[str, list[ResultRow]], config: EvalConfig) -> list[str]:
    rows = _grouped(by_kind.get("sanitise", []))
    if not rows:
        return []
    before = _grouped(by_kind.get("backdoor", []))
    out = ["### Training-set sanitisation", ""]
    out.append(
        "The poisoned training set, exactly as the backdoor made it, is screened by the detector fitted on the "
        "backdoored model (calibrated FRR as configured); the architecture is trained again from the same seed "
        "on the samples kept. *recall*: poisoned samples flagged; *precision*: flagged samples that were "
        "poisoned; ASR before (the backdoored model) and after (the retrained one)."
    )
    out.append("")
    body = []
    for (b, d), rs in sorted(rows.items(), key=lambda kv: (_backdoor_order(config) + [kv[0][0]]).index(kv[0][0])):
        bd = before.get((b, "None"), [])
        body.append(
            [
                b,
                d,
                fmt_num([r.metrics["poisoned"] for r in rs], 0),
                fmt_num([r.metrics["flagged"] for r in rs], 0),
                fmt_pct([r.metrics["recall"] for r in rs]),
                fmt_pct([r.metrics["precision"] for r in rs]),
                fmt_pct([r.metrics["asr_mean"] for r in bd]),
                fmt_pct([r.metrics["asr_after_mean"] for r in rs]),
                fmt_pct([r.accuracy for r in bd]),
                fmt_pct([r.accuracy for r in rs]),
                fmt_num([r.seconds for r in rs], 0),
            ]
        )
    header = ["backdoor", "detector", "poisoned", "flagged", "recall %", "precision %", "ASR before %"]
    out += [_tab(header + ["ASR after %", "clean % before", "clean % after", "s"], body), ""]
    return out


# -- plots --------------------------------------------------------------------------------


def _violins(ax: Any, data: list[list[float]], positions: list[float], colour: str) -> None:
    """Horizontal violins (matplotlib before 3.10 says ``vert=False``, after ``orientation``)."""
    import inspect

    new = "orientation" in inspect.signature(ax.violinplot).parameters
    way: dict[str, Any] = {"orientation": "horizontal"} if new else {"vert": False}
    parts = ax.violinplot(data, positions, widths=0.38, showmedians=True, showextrema=False, **way)
    for body in parts["bodies"]:
        body.set_facecolor(colour)
        body.set_edgecolor(colour)
        body.set_alpha(0.55)
    parts["cmedians"].set_color(colour)


def detection_plots(rows: Sequence[ResultRow], config: EvalConfig, folder: Path, plt: Any) -> list[str]:
    """``detect-roc.png`` (ROC curves per detector, one curve per backdoor, first seed;
    identical curves drawn once, named together) and ``detect-scores.png`` (per detector,
    each backdoor's clean against triggered score distributions, with the threshold)."""
    from matplotlib.lines import Line2D

    from advparams.metrics.screening import roc_curve
    from advparams.reports.plotting import grid_shape, same_curves, save

    section = config.detection
    if section is None:
        return []
    det = _grouped([r for r in rows if r.kind == "detection" and "clean_scores" in r.metrics])
    if not det:
        return []
    order = _backdoor_order(config)
    titles = [d.title for d in section.detectors if any((b, d.title) in det for b in order)]
    present = [b for b in order if any((b, t) in det for t in titles)]
    colour = {b: f"C{i % 10}" for i, b in enumerate(present)}
    seed = min(r.seed for rs in det.values() for r in rs)
    made: list[str] = []
    nrows, ncols = grid_shape(len(titles), max_cols=2)
    fig, axes = plt.subplots(nrows, ncols, figsize=(10, 3.1 * nrows + 0.5), squeeze=False, layout="constrained")
    for i, (ax, t) in enumerate(zip(axes.flat, titles, strict=False)):
        found = [(b, det[(b, t)][0]) for b in present if (b, t) in det]
        curves = [roc_curve(r.metrics["clean_scores"], r.metrics["triggered_scores"]) for _, r in found]
        for group in same_curves(curves):
            fpr, tpr = curves[group[0]]
            label = ", ".join(f"{found[k][0]} {found[k][1].metrics['auc']:.2f}" for k in group)
            ax.plot([100 * v for v in fpr], [100 * v for v in tpr], lw=1.4, color=colour[found[group[0]][0]],
                    label=label + (" (same curve)" if len(group) > 1 else ""))  # fmt: skip
        ax.plot([0, 100], [0, 100], color="grey", lw=0.7, ls=":")
        ax.set_title(t)
        ax.set_xlabel("clean inputs flagged (FPR, %)")
        if i % ncols == 0:
            ax.set_ylabel("triggered flagged (TPR, %)")
        ax.grid(alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), title="backdoor, AUC", fontsize=7, title_fontsize=7)
    for ax in list(axes.flat)[len(titles) :]:
        ax.axis("off")
    fig.suptitle(f"Detector ROC curves, seed {seed} (dotted: chance)")
    save(fig, plt, folder, "detect-roc.png", made)

    frr = f"{section.frrs[0]:g}"
    nrows, ncols = grid_shape(len(titles), max_cols=3)
    size = (min(10.0, 3.2 * ncols + 0.6), (0.5 * len(present) + 1.0) * nrows + 0.9)
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, sharey=True, layout="constrained")
    for ax, t in zip(axes.flat, titles, strict=False):
        for j, b in enumerate(present):
            rs = det.get((b, t))
            if not rs:
                continue
            m = rs[0].metrics
            _violins(ax, [m["clean_scores"]], [j - 0.2], "tab:blue")
            _violins(ax, [m["triggered_scores"]], [j + 0.2], "tab:red")
            ax.plot([m["thresholds"][frr]] * 2, [j - 0.45, j + 0.45], color="black", lw=1.2)
        ax.set_yticks(range(len(present)), present)
        ax.set_ylim(len(present) - 0.5, -0.5)
        ax.set_title(t)
        ax.set_xlabel("score (higher: more suspicious)")
        ax.grid(alpha=0.3, axis="x")
    for ax in list(axes.flat)[len(titles) :]:
        ax.axis("off")
    handles = [
        Line2D([], [], color="tab:blue", lw=6, alpha=0.55, label="clean inputs"),
        Line2D([], [], color="tab:red", lw=6, alpha=0.55, label="triggered inputs"),
        Line2D([], [], color="black", lw=1.2, label=f"threshold at FRR {frr}"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3)
    fig.suptitle(f"Detector scores by backdoor, seed {seed} (violins: score distributions; line: median)")
    save(fig, plt, folder, "detect-scores.png", made)
    return made


__all__ = ["PAPER_AP", "detection_plots", "detection_sections", "paper_detection"]
