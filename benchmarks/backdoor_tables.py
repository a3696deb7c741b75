"""Backdoors (docs/backdoors.md): the tables that set the backdoor evaluations side by side,
one column per run, rebuilt from the runs' rows alone (no model is run; mean ± sample std
over each run's seeds, as in its report):

    .venv/bin/python benchmarks/backdoor_tables.py --table summary \\
        docs/evaluation/backdoors-fashion-mnist docs/evaluation/backdoors-fashion-mnist-colour

Tables (``--table``):

* ``summary``: every backdoor's clean-accuracy cost against its twin (points), ASR % and
  PSNR dB (mean), with the paper's figure. PTB and its twin without PTB at the paper's
  poisoning rate (0.5 %) only; the other rates are in the ``physical`` table. Notes in a
  cell: a DCT backdoor's magnitude; the ASR of each trigger where the mean misses the
  paper's figure; the ASR of each seed where the seeds' standard deviation is above 20
  points (a mean that hides different outcomes).
* ``compression``: ASR % at the grid's lowest quality after each codec, the normal
  backdoor (the compression-resistant one's ``compare``) against the compression-resistant
  one; where a run's compression-resistant backdoor does worst at another quality, its
  means there in brackets. Codecs outside the compression-resistant training are marked
  held out.
* ``physical``: ASR % under every transformation at once (``combined``) at the grid's
  smallest and largest strength, PTB against the same sticker without PTB, one line per
  poisoning rate; in brackets the rate at which the same transformation of clean images
  is answered with the target.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advparams.backdoors import BACKDOORS
from advparams.evaluation import open_run
from advparams.evaluation.backdoor_config import BackdoorSpec
from advparams.evaluation.rows import ResultRow
from advparams.imaging import CODECS as ALL_CODECS
from advparams.reports import fmt_num, fmt_pct, mean_std, table
from advparams.reports.backdoors import grid_cell

DATASETS = {"fashion-mnist": "Fashion-MNIST", "fashion-mnist-colour": "colour"}
MODELS = {"lenet": "LeNet-5", "vgg": "VGG"}
CODECS = {"jpeg": "JPEG", "jpeg2000": "JPEG 2000", "webp": "WEBP"}
NAMES = {"blend": "Blend", "badnets": "BadNets"}
PAPER_RATE = 0.005  # PTB's poisoning rate in its paper
# The papers' abstracts (CIFAR-10 for DCT and compression, VGGFace for PTB).
PAPER_ASR = {"n-to-n": 93.95, "n-to-one": 90.22}
PAPER_COMPRESSION = {"jpeg": "6.63 / 98.77", "jpeg2000": "6.20 / 97.69", "webp": "3.97 / 98.93"}
SPREAD = 20.0  # points of std above which a cell gives each seed's ASR


class Run:
    """One backdoor evaluation: its config's backdoors and their rows by label, seed order."""

    def __init__(self, folder: Path) -> None:
        run = open_run(folder)
        self.config = run.read_config()
        if self.config.backdoors is None:
            raise SystemExit(f"{folder}: the run has no backdoors section")
        self.section = self.config.backdoors
        self.rows: dict[str, list[ResultRow]] = {}
        for r in run.rows():
            if r.kind == "backdoor":
                self.rows.setdefault(str(r.scheme), []).append(r)
        for rs in self.rows.values():
            rs.sort(key=lambda r: r.seed)

    def name(self, model: bool) -> str:
        data = DATASETS.get(self.config.dataset, self.config.dataset)
        return f"{data} / {MODELS.get(self.config.model, self.config.model)}" if model else data

    def spec(self, label: str) -> BackdoorSpec:
        (spec,) = [s for s in self.section.attacks if s.title == label]
        return spec


def _options(spec: BackdoorSpec) -> dict[str, Any]:
    """The backdoor's options with its defaults."""
    return dict(BACKDOORS.build(spec.name, dict(spec.options)).config_dict())


def _label(spec: BackdoorSpec) -> str:
    o = _options(spec)
    if spec.name == "badnets":
        return f"BadNets ({o['size']}x{o['size']} {o['pattern']})"
    if spec.name == "blend":
        return f"Blend (noise, alpha {o['alpha']:g})"
    if spec.name == "dct":
        mode = "N-to-N" if o["mode"] == "n-to-n" else "N-to-One"
        return f"DCT {mode}, N = {o['triggers']}"
    if spec.name == "ptb":
        rate = f"{100 * o['poison_rate']:g} %"
        return f"PTB, {rate}" if o["physical"] else f"same sticker without PTB, {rate}"
    return spec.title


def _paper(spec: BackdoorSpec) -> str:
    o = _options(spec)
    if spec.name == "dct":
        if o["mode"] == "n-to-n":
            return f"mean ASR {PAPER_ASR['n-to-n']:.2f} % (CIFAR-10), clean accuracy unaffected"
        return f"mean ASR {PAPER_ASR['n-to-one']:.2f} % (CIFAR-10)"
    if spec.name == "ptb":
        return "82 % under physical conditions (VGGFace)" if o["physical"] else "under 11 % under physical conditions"
    return "–"


def _summary_cell(run: Run, spec: BackdoorSpec) -> str:
    rs = run.rows.get(spec.title, [])
    if not rs:
        return "–"
    cost = []
    for r in rs:
        twin = r.metrics.get("clean_accuracy_twin")
        if twin is not None and r.accuracy is not None:
            cost.append(100 * (twin - r.accuracy))
    asr = [100 * r.metrics["asr_mean"] for r in rs]
    psnr = mean_std([sum(r.metrics["psnr"]) / len(r.metrics["psnr"]) for r in rs])[0]
    text = f"{fmt_num(cost)}, {fmt_pct([r.metrics['asr_mean'] for r in rs])}, {psnr:.1f}"
    notes = []
    o = _options(spec)
    if spec.name == "dct":
        notes.append(f"magnitude {o['magnitude']:g}")
        triggers = len(rs[0].metrics["asr"])
        if triggers > 1 and mean_std(asr)[0] < PAPER_ASR[o["mode"]]:
            each = [mean_std([100 * r.metrics["asr"][i] for r in rs])[0] for i in range(triggers)]
            notes.append("per trigger " + " / ".join(f"{v:.2f}" for v in each))
    if len(asr) > 1 and mean_std(asr)[1] > SPREAD:
        notes.append("seeds " + " / ".join(f"{v:.2f}" for v in asr))
    return text + (f" ({'; '.join(notes)})" if notes else "")


def summary(runs: Sequence[Run]) -> str:
    specs = [
        s
        for s in runs[0].section.attacks
        if not (s.name == "ptb" and abs(_options(s)["poison_rate"] - PAPER_RATE) > 1e-12)
    ]
    header = ["backdoor", *[f"{r.name(True)}: cost pp, ASR %, PSNR dB" for r in runs], "paper"]
    body = [[_label(s), *[_summary_cell(run, run.spec(s.title)) for run in runs], _paper(s)] for s in specs]
    return table(header, body)


def _mean(values: list[float]) -> str:
    return f"{100 * mean_std(values)[0]:.2f}"


def compression(runs: Sequence[Run]) -> str:
    pairs = []
    for run in runs:
        (res,) = [s for s in run.section.attacks if s.name == "compression-resistant" and "compression" in s.measure]
        if res.compare is None:
            raise SystemExit("the compression-resistant backdoor names no normal backdoor to compare (compare:)")
        pairs.append((run.rows[res.compare], run.rows[res.title], res))
    first = runs[0].section.qualities[0]
    held_out = [
        c
        for c in runs[0].section.codecs
        if all(c not in _options(res).get("codecs", ALL_CODECS) for _, _, res in pairs)
    ]
    worst: list[int] = []
    for run, (_, resistant, _) in zip(runs, pairs, strict=True):
        cells = [
            (mean_std(grid_cell(resistant, "compression", c, str(q)))[0], q)
            for c in run.section.codecs
            for q in run.section.qualities
        ]
        worst.append(min(cells)[1])
    normal = NAMES.get(runs[0].spec(pairs[0][2].compare or "").name, pairs[0][2].compare)
    header = ["codec", *[f"{r.name(False)}: {normal} / resistant" for r in runs], "paper: normal / resistant"]
    body = []
    for codec in runs[0].section.codecs:
        line = [CODECS.get(codec, codec) + (" (held out)" if codec in held_out else "")]
        for (plain, resistant, _), q in zip(pairs, worst, strict=True):
            cell = f"{fmt_pct(grid_cell(plain, 'compression', codec, str(first)))} / "
            cell += fmt_pct(grid_cell(resistant, "compression", codec, str(first)))
            if q != first:
                a = grid_cell(plain, "compression", codec, str(q))
                b = grid_cell(resistant, "compression", codec, str(q))
                cell += f" (q{q}: {_mean(a)} / {_mean(b)})"
            line.append(cell)
        line.append(PAPER_COMPRESSION.get(codec, "–"))
        body.append(line)
    return table(header, body)


def physical(runs: Sequence[Run]) -> str:
    strengths = runs[0].section.transformations["combined"]
    shown = [strengths[0], strengths[-1]] if len(strengths) > 1 else list(strengths)
    pairs = [s for s in runs[0].section.attacks if s.name == "ptb" and s.compare and "physical" in s.measure]
    header = ["poisoning"]
    for run in runs:
        header += [f"{run.name(False)}: PTB / no PTB, x{shown[0]:g}", *[f"x{s:g}" for s in shown[1:]]]
    header.append("paper: PTB / no PTB")
    body = []
    for twin in pairs:
        rate = _options(twin)["poison_rate"]
        line = [f"{100 * rate:g} %"]
        for run in runs:
            for s in shown:
                cells = []
                for label in (str(twin.compare), twin.title):
                    rs = run.rows.get(label, [])
                    asr = grid_cell(rs, "physical", "combined", str(s))
                    clean = grid_cell(rs, "physical_clean", "combined", str(s))
                    cells.append(f"{_mean(asr)} ({_mean(clean)})" if asr else "–")
                line.append(" / ".join(cells))
        line.append("82 / under 11" if abs(rate - PAPER_RATE) < 1e-12 else "–")
        body.append(line)
    return table(header, body)


TABLES = {"summary": summary, "compression": compression, "physical": physical}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="backdoor evaluation run folders, one column each")
    parser.add_argument("--table", choices=sorted(TABLES), required=True, help="which table to print")
    args = parser.parse_args()
    print(TABLES[args.table]([Run(f) for f in args.runs]))


if __name__ == "__main__":
    main()
