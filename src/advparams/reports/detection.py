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


def detection_plots(rows: Sequence[ResultRow], config: EvalConfig, folder: Path, plt: Any) -> list[str]:
    """``detect-roc.png`` (ROC curves per detector, one curve per backdoor, first seed) and
    ``detect-scores.png`` (score histograms, clean against triggered)."""
    from advparams.metrics.screening import roc_curve

    section = config.detection
    if section is None:
        return []
    det = _grouped([r for r in rows if r.kind == "detection" and "clean_scores" in r.metrics])
    if not det:
        return []
    order = _backdoor_order(config)
    titles = [d.title for d in section.detectors]
    made = []
    fig, axes = plt.subplots(1, len(titles), figsize=(3.4 * len(titles), 3.2), squeeze=False)
    for ax, t in zip(axes[0], titles, strict=True):
        for b in order:
            rs = det.get((b, t))
            if not rs:
                continue
            r = rs[0]
            fpr, tpr = roc_curve(r.metrics["clean_scores"], r.metrics["triggered_scores"])
            ax.plot([100 * v for v in fpr], [100 * v for v in tpr], lw=1.2, label=f"{b} (AUC {r.metrics['auc']:.2f})")
        ax.plot([0, 100], [0, 100], color="grey", lw=0.6, ls=":")
        ax.set_title(f"{t} (seed {min(r.seed for rs in det.values() for r in rs)})", fontsize=9)
        ax.set_xlabel("FPR % (clean flagged)", fontsize=8)
        ax.set_ylabel("TPR % (triggered flagged)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(folder / "detect-roc.png", dpi=110)
    plt.close(fig)
    made.append("detect-roc.png")

    present = [b for b in order if any((b, t) in det for t in titles)]
    fig, axes = plt.subplots(len(titles), len(present), figsize=(2.6 * len(present), 2.2 * len(titles)), squeeze=False)
    for i, t in enumerate(titles):
        for j, b in enumerate(present):
            ax = axes[i][j]
            rs = det.get((b, t))
            if not rs:
                ax.axis("off")
                continue
            m = rs[0].metrics
            lo = min(m["clean_scores"] + m["triggered_scores"])
            hi = max(m["clean_scores"] + m["triggered_scores"])
            bins = [lo + (hi - lo) * k / 30 for k in range(31)] if hi > lo else 10
            ax.hist(m["clean_scores"], bins=bins, alpha=0.6, density=True, label="clean", color="tab:blue")
            ax.hist(m["triggered_scores"], bins=bins, alpha=0.6, density=True, label="triggered", color="tab:red")
            ax.axvline(m["thresholds"][f"{section.frrs[0]:g}"], color="black", lw=0.8, ls="--")
            ax.set_title(f"{t} / {b}", fontsize=7)
            ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6)
    fig.suptitle(f"Detector scores (higher: more suspicious; dashed: threshold at FRR {section.frrs[0]:g})", fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "detect-scores.png", dpi=110)
    plt.close(fig)
    made.append("detect-scores.png")
    return made


__all__ = ["PAPER_AP", "detection_plots", "detection_sections", "paper_detection"]
