"""The backdoor sections of an evaluation report and their plots, rebuilt from ``backdoor``
rows (the example-image grid from the config: a trigger is a function of its backdoor's
options and seed, so it is made again, not stored)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from advparams.evaluation.backdoor_config import BackdoorSpec
from advparams.evaluation.config import EvalConfig
from advparams.evaluation.rows import ResultRow
from advparams.reports._table import fmt_num, fmt_pct, table

log = logging.getLogger(__name__)


def _method(spec: BackdoorSpec) -> Any:
    """The registered backdoor class of ``spec`` (what the report asks about its paper)."""
    from advparams.backdoors import BACKDOORS

    return BACKDOORS.get(spec.name)


def paper_figure(spec: BackdoorSpec) -> str:
    """The paper's headline number for this backdoor (its abstract's), or a dash
    (:meth:`advparams.backdoors.Backdoor.paper_figure`)."""
    return str(_method(spec).paper_figure(spec.options))


def _paper_compression(specs: Sequence[BackdoorSpec]) -> dict[str, tuple[float, float]]:
    """The papers' ASR after each codec, normal against resistant, of the measured backdoors."""
    out: dict[str, tuple[float, float]] = {}
    for s in specs:
        out.update(_method(s).paper_compression)
    return out


def _by_spec(rows: Sequence[ResultRow]) -> dict[str, list[ResultRow]]:
    out: dict[str, list[ResultRow]] = defaultdict(list)
    for r in rows:
        out[str(r.scheme)].append(r)
    for rs in out.values():
        rs.sort(key=lambda r: r.seed)
    return out


def grid_cell(rs: Sequence[ResultRow], grid: str, key: str, sub: str) -> list[float]:
    """Per seed, the mean over triggers of ``metrics[grid][key][sub]``."""
    vals = []
    for r in rs:
        v = r.metrics.get(grid, {}).get(key, {}).get(sub)
        if v:
            vals.append(sum(v) / len(v))
    return vals


def _cost(rs: Sequence[ResultRow]) -> list[float | None]:
    out: list[float | None] = []
    for r in rs:
        twin = r.metrics.get("clean_accuracy_twin")
        out.append(None if twin is None or r.accuracy is None else 100 * (twin - r.accuracy))
    return out


def backdoor_sections(by_kind: Mapping[str, list[ResultRow]], config: EvalConfig) -> list[str]:
    """The Markdown lines of the backdoor sections (none without a ``backdoors`` section)."""
    section = config.backdoors
    if section is None:
        return []
    rows = _by_spec(by_kind.get("backdoor", []))
    out = ["## Backdoors", ""]
    out.append(
        "Each backdoored model is trained from its seed exactly as that seed's clean model (the *twin*: same "
        "initial weights, options and batch order) but on the poisoned training set; *cost* is the twin's test "
        "accuracy minus the backdoored model's, in points. ASR counts only test images whose true class is not "
        f"the target (first {section.asr_samples or 'all'} test images); for several triggers, the mean over "
        "triggers. *Twin's target rate*: how often the clean twin answers the target on triggered images."
    )
    out.append("")
    body = []
    for spec in section.attacks:
        rs = rows.get(spec.title, [])
        if not rs:
            continue
        body.append(
            [
                spec.title,
                fmt_num([r.metrics["info"]["poisoned"] for r in rs], 0),
                fmt_pct([r.metrics.get("clean_accuracy_twin") for r in rs]),
                fmt_pct([r.accuracy for r in rs]),
                fmt_num(_cost(rs)),
                fmt_pct([r.metrics["asr_mean"] for r in rs]),
                fmt_pct([sum(r.metrics["reference_asr"]) / len(r.metrics["reference_asr"]) for r in rs]),
                fmt_num([sum(r.metrics["psnr"]) / len(r.metrics["psnr"]) for r in rs], 1),
                fmt_num([_mean_or_none(r.metrics["ssim"]) for r in rs], 3),
                fmt_num([r.seconds for r in rs], 0),
                paper_figure(spec),
            ]
        )
    header = ["backdoor", "poisoned", "twin clean %", "clean %", "cost (pp)", "ASR %", "twin's target rate %"]
    out.append(_tab(header + ["PSNR dB", "SSIM", "implant s", "paper"], body))
    out.append("")

    multi = [s for s in section.attacks if any(len(r.metrics["asr"]) > 1 for r in rows.get(s.title, []))]
    if multi:
        out += ["### ASR of each trigger", ""]
        body = []
        for spec in multi:
            rs = rows[spec.title]
            for i, target in enumerate(rs[0].metrics["info"]["targets"]):
                body.append([spec.title, str(i), str(target), fmt_pct([r.metrics["asr"][i] for r in rs])])
        out += [_tab(["backdoor", "trigger", "target", "ASR %"], body), ""]

    out += _compression_lines(section, rows)
    out += _physical_lines(section, rows)
    return out


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _tab(header: list[str], body: list[list[str]]) -> str:
    return table(header, body) if body else "_No rows yet._"


def _compression_lines(section: Any, rows: Mapping[str, list[ResultRow]]) -> list[str]:
    measured = [s for s in section.attacks if "compression" in s.measure and rows.get(s.title)]
    if not measured:
        return []
    out = ["### ASR after compression", ""]
    out.append(
        "The triggered test images are compressed and decoded before they reach the model (JPEG and WEBP at "
        "Pillow's quality; JPEG 2000 at a target PSNR of 20 + quality/4 dB). *trained on*: the codecs of the "
        "compression-resistant backdoor's feature-consistency training; the others are held out. Paper "
        "(CIFAR-10, quality not stated): a normal backdoor keeps 6.63 / 6.20 / 3.97 % ASR after JPEG / "
        "JPEG 2000 / WEBP, the compression-resistant one 98.77 / 97.69 / 98.93 %."
    )
    out.append("")
    trained, papers = _trained_codecs(measured), _paper_compression(measured)
    titles = [s.title for s in measured]
    body = []
    for codec in section.codecs:
        for q in section.qualities:
            cells = [fmt_pct(grid_cell(rows[t], "compression", codec, str(q))) for t in titles]
            paper = papers.get(codec)
            body.append(
                [
                    codec,
                    "yes" if codec in trained else "**held out**",
                    str(q),
                    *cells,
                    f"{paper[0]:.2f} / {paper[1]:.2f}" if paper and q == section.qualities[0] else "",
                ]
            )
    header = ["codec", "trained on", "quality", *[f"{t} ASR %" for t in titles], "paper normal / resistant %"]
    out += [_tab(header, body), ""]
    return out


def _trained_codecs(specs: Sequence[BackdoorSpec]) -> set[str]:
    """The codecs the backdoors among ``specs`` were trained against
    (:meth:`advparams.backdoors.Backdoor.trained_codecs`)."""
    return {c for s in specs for c in _method(s).trained_codecs(s.options)}


def _physical_lines(section: Any, rows: Mapping[str, list[ResultRow]]) -> list[str]:
    measured = [s for s in section.attacks if "physical" in s.measure and rows.get(s.title)]
    if not measured:
        return []
    out = ["### ASR under held-out physical transformations", ""]
    out.append(
        "The triggered test images go through each transformation (its own random draws, never a training "
        "draw; strengths up to three times PTB's training ranges; *combined*: all transformations at once, "
        "each up to the factor times PTB's training range). Each cell: ASR % (in brackets: the rate at which "
        "the same transformation of *clean* images is answered with the target, which a trigger-free "
        "shortcut would raise). Paper (VGGFace, physical captures): 82 % with PTB at 0.5 % poisoning, under "
        "11 % without."
    )
    out.append("")
    titles = [s.title for s in measured]
    body = []
    for kind, strengths in section.transformations.items():
        for s in strengths:
            cells = []
            for t in titles:
                asr = grid_cell(rows[t], "physical", kind, str(s))
                clean = grid_cell(rows[t], "physical_clean", kind, str(s))
                cells.append(f"{fmt_pct(asr)} ({fmt_pct(clean)})" if asr else "–")
            body.append([kind, f"{s:g}", *cells])
    out += [_tab(["transformation", "strength", *titles], body), ""]
    return out


# -- plots --------------------------------------------------------------------------------


def _strength_label(kind: str) -> str:
    """``strength`` with its unit, as PTB's options document each transformation's."""
    from advparams.backdoors.measure import COMBINED
    from advparams.backdoors.ptb import PTBConfig
    from advparams.reports.plotting import attribute_doc

    if kind == COMBINED:
        return "strength (x PTB's training ranges)"
    unit = attribute_doc(PTBConfig, kind.replace("-", "_"))
    return f"strength ({unit.replace('``', '').rstrip('.')})" if unit else "strength"


def backdoor_plots(rows: Sequence[ResultRow], config: EvalConfig, folder: Path, plt: Any) -> list[str]:
    """``backdoor-compression.png`` (ASR against quality per codec),
    ``backdoor-physical.png`` (ASR against strength per transformation) and
    ``backdoor-examples.png`` (clean, triggered and difference images); a grid with
    fewer than two measured x values is not drawn."""
    from advparams.reports.plotting import Series, draw_series, enough_points, grid_shape, save, set_ticks

    section = config.backdoors
    if section is None:
        return []
    made: list[str] = []
    by = _by_spec([r for r in rows if r.kind == "backdoor"])
    order = {s.title: i for i, s in enumerate(section.attacks)}
    for grid, keys, name in (
        ("compression", list(section.codecs), "backdoor-compression.png"),
        ("physical", list(section.transformations), "backdoor-physical.png"),
    ):
        measured = [s for s in section.attacks if grid in s.measure and by.get(s.title)]
        panels: dict[str, list[Series]] = {}
        for key in keys:
            xs = section.qualities if grid == "compression" else section.transformations[key]
            series = []
            for s in measured:
                pts = {float(x): [100 * v for v in grid_cell(by[s.title], grid, key, str(x))] for x in xs}
                pts = {x: v for x, v in pts.items() if v}
                # the claim solid, the comparison dashed: under compression every backdoor not
                # trained against it; elsewhere a method's twin without its training
                method = _method(s)
                robust = method.robust_to(grid, s.options)
                dashed = not robust and (grid == "compression" or grid in method.survives)
                if pts:
                    series.append(Series(s.title, pts, order[s.title], dashed=dashed))
            if enough_points(x for sr in series for x in sr.points):
                panels[key] = series
        if not panels:
            continue
        nrows, ncols = grid_shape(len(panels))
        fig, axes = plt.subplots(nrows, ncols, figsize=(min(10.0, 2.5 * ncols + 0.6), 2.5 * nrows + 1.0),
                                 squeeze=False, sharey=True, layout="constrained")  # fmt: skip
        moved = False
        for i, (ax, (key, series)) in enumerate(zip(axes.flat, panels.items(), strict=False)):
            moved |= draw_series(ax, series, log=False, tol=2.0)
            set_ticks(ax, [x for sr in series for x in sr.points], log=False)
            held_out = grid == "compression" and key not in _trained_codecs(measured)
            ax.set_title(key + (" (held out of training)" if held_out else ""), fontsize=9)
            ax.set_xlabel("quality (higher: less loss)" if grid == "compression" else _strength_label(key), fontsize=8)
            if i % ncols == 0:
                ax.set_ylabel("attack success rate (%)")
            ax.set_ylim(-3, 103)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(panels) :]:
            ax.axis("off")
        handles = {lab: h for ax in axes.flat for h, lab in zip(*ax.get_legend_handles_labels(), strict=True)}
        note = "dashed: not trained for these conditions" + (
            "; lines that coincide are drawn slightly apart along x" if moved else ""
        )
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(4, len(handles)),
                   title=note, title_fontsize=8)  # fmt: skip
        what = "lossy compression" if grid == "compression" else "physical transformations"
        fig.suptitle(f"Backdoor success after {what}")
        save(fig, plt, folder, name, made)
    examples = example_grid(config, folder, plt)
    return made + ([examples] if examples else [])


def example_grid(config: EvalConfig, folder: Path, plt: Any, images: int = 3) -> str | None:
    """Clean test images, each backdoor's triggered copies (every trigger) and their
    difference maps (x5), for the config's first seed; None where the data is not here."""
    from advparams.backdoors import BACKDOORS
    from advparams.data import load_dataset
    from advparams.errors import AdvParamsError
    from advparams.evaluation.context import with_seed
    from advparams.reports.plotting import save

    section = config.backdoors
    if section is None:
        return None
    try:
        test = load_dataset(config.dataset, "test", config.data_dir)
    except AdvParamsError as exc:
        log.warning("no example images in the report: %s", exc)
        return None
    seed = config.seeds[0]
    x = test.images[:images]
    # One row per distinct trigger (backdoors that share one, e.g. PTB and no PTB, share a row).
    labels: list[list[str]] = [["clean"]]
    batches: list[torch.Tensor] = [x]
    for spec in section.attacks:
        cls = BACKDOORS.get(spec.name)
        backdoor = BACKDOORS.build(spec.name, with_seed(cls, dict(spec.options), seed))
        trigger = backdoor.make_trigger(test.input_shape, test.num_classes, torch.Generator().manual_seed(seed))
        for i in range(len(trigger)):
            t = trigger.apply(x, i)
            label = spec.title + (f" #{i}" if len(trigger) > 1 else "")
            same = [j for j, b in enumerate(batches) if torch.equal(b, t)]
            if same:
                labels[same[0]].append(label)
            else:
                labels.append([label])
                batches.append(t)
    rows = len(batches)
    fig, axes = plt.subplots(
        rows, 2 * images, figsize=(1.1 * 2 * images + 1.8, 1.1 * rows + 0.6), squeeze=False, layout="constrained"
    )
    for r, (names, batch) in enumerate(zip(labels, batches, strict=True)):
        diff = ((batch.float() - x.float()).abs() * 5).clamp(0, 255).to(torch.uint8)
        for i in range(images):
            for k, shown in enumerate((batch[i], diff[i])):
                ax = axes[r][2 * i + k]
                img = shown.permute(1, 2, 0).numpy()
                grey = img.shape[2] == 1
                ax.imshow(img[:, :, 0] if grey else img, cmap="gray" if grey else None, vmin=0, vmax=255)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title("image" if k == 0 else "|diff| x5", fontsize=8)
        axes[r][0].set_ylabel("\n".join(names), fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(f"Backdoor triggers on {config.dataset} (seed {seed}): each row's images and their difference")
    made: list[str] = []
    save(fig, plt, folder, "backdoor-examples.png", made)
    return made[0]


__all__ = ["backdoor_plots", "backdoor_sections", "example_grid", "grid_cell", "paper_figure"]
