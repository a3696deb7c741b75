"""Ownership fingerprints (docs/fingerprints.md): the page's tables, rebuilt from the rows of
one fingerprint evaluation (no model is run):

    .venv/bin/python benchmarks/fingerprint_tables.py --table suspects docs/evaluation/fingerprints-fashion-mnist

Tables (``--table``):

* ``suspects``: each suspect (the owner's model, every attack's model, the held-out
  negatives) against each fingerprint: score (mean over seeds) / seeds verified at the
  calibrated threshold / ROC-AUC against the negatives (mean over seeds), and the seeds
  whose additional-class watermark still verifies after the same attack. *acc %*: the
  suspect's test accuracy, mean over seeds (± the std where it is above 10 points). A
  count of 0 verified seeds is in bold where an attack first brings it to 0 (its first
  setting, or the first after one that left a seed verified); false positives of the
  negatives are in bold where there are any.
* ``lock``: the model locked (the config's ``lock_with``) and unlocked again, per seed:
  locked test accuracy (in bold above the lock's target, chance + 2 points), each
  fingerprint's score and decision on the locked model, and whether the unlocked model is
  bit-exact and verifies with every fingerprint.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

from advparams.attacks import ATTACKS
from advparams.evaluation import open_run
from advparams.evaluation.rows import ResultRow
from advparams.metrics.screening import roc_auc
from advparams.reports import mean_std, table

SCHEMES = {"infip": "InFIP", "ipguard": "IPGuard"}
MODELS = {"lenet": "LeNet-5", "vgg": "VGG-style", "resnet18": "ResNet-18"}
FRESH = {"lenet": "LeNet-5", "vgg": "VGG"}
SPREAD = 10.0  # points of accuracy std above which the acc cell gives it


def _key(r: ResultRow) -> tuple[str, str]:
    return str(r.attack), repr(sorted(r.setting.items()))


def _label(attack: str, setting: dict[str, Any], model: str, first: bool) -> str:
    if attack == "finetune":
        pct = f"{100 * setting['data_fraction']:g} %"
        return f"fine-tuned, {pct} of the data" if first else f"fine-tuned, {pct}"
    if attack == "prune":
        return f"pruned {100 * setting['rate']:g} %"
    if attack == "overwrite":
        o = ATTACKS.build("overwrite", dict(setting)).config_dict()
        name = {"zhang-noise": "Zhang-noise"}.get(o["watermark"], o["watermark"])
        return f"overwritten (attacker's {name} watermark)"
    if attack == "distill":
        o = ATTACKS.build("distill", dict(setting)).config_dict()
        return f"distilled into a fresh {FRESH.get(model, model)} ({100 * o['data_fraction']:g} % of the data)"
    if attack == "relevance-evasion":
        return f"adaptive, weight {setting['weight']:g}"
    return " ".join([attack, *(f"{k}={v}" for k, v in sorted(setting.items()))])


def _acc(values: list[float]) -> str:
    m, s = mean_std([100 * v for v in values])
    return f"{m:.2f} ± {s:.2f}" if len(values) > 1 and s > SPREAD else f"{m:.2f}"


def _count(flags: list[bool], bold: bool) -> str:
    text = f"{sum(flags)}/{len(flags)}"
    return f"**{text}**" if bold else text


def suspects(folder: Path) -> str:
    run = open_run(folder)
    config = run.read_config()
    if config.fingerprints is None:
        raise SystemExit(f"{folder}: the run has no fingerprints section")
    rows = run.rows()
    titles = [s.title for s in config.fingerprints.schemes]
    owners = {
        t: sorted((r for r in rows if r.kind == "fingerprint" and r.scheme == t), key=lambda r: r.seed) for t in titles
    }
    negatives: dict[str, dict[int, list[float]]] = {t: defaultdict(list) for t in titles}
    entries: dict[str, list[dict[str, Any]]] = {t: [] for t in titles}
    for t in titles:
        for r in owners[t]:
            for n in r.metrics.get("negatives", []):
                negatives[t][r.seed].append(float(n["score"]))
                entries[t].append({**n, "owner_seed": r.seed})
    by_suspect: dict[tuple[str, tuple[str, str]], list[ResultRow]] = defaultdict(list)
    for r in rows:
        if r.kind == "fp-suspect":
            by_suspect[(str(r.scheme), _key(r))].append(r)
    marks: dict[tuple[str, str], list[ResultRow]] = defaultdict(list)
    for r in rows:
        if r.kind == "wm-attack":
            marks[_key(r)].append(r)
    watermark = [r for r in rows if r.kind == "watermark"]

    def cells(t: str, rs: list[ResultRow], bold: bool) -> str:
        rs = sorted(rs, key=lambda r: r.seed)
        score = mean_std([float(r.metrics["score"]) for r in rs])[0]
        aucs = [roc_auc(negatives[t][r.seed], [float(r.metrics["score"])]) for r in rs if negatives[t].get(r.seed)]
        auc = f"{mean_std(aucs)[0]:.2f}" if aucs else "–"
        return f"{score:.3f} / {_count([bool(r.metrics['verified']) for r in rs], bold)} / {auc}"

    header = ["suspect", "acc %", *[SCHEMES.get(t, t) for t in titles]]
    wm_title = config.watermarks[0].title if config.watermarks else None
    if wm_title:
        header.append(f"{wm_title} watermark verified")
    body = []
    line = ["owner's model", _acc([float(r.accuracy or 0) for r in owners[titles[0]]])]
    line += [cells(t, owners[t], False) for t in titles]
    if wm_title:
        line.append(f"{_count([bool(r.metrics['verified']) for r in watermark], False)} (before attacks)")
    body.append(line)
    previous: dict[str, dict[str, int]] = defaultdict(dict)  # attack -> column -> verified seeds before
    seen: set[str] = set()
    for aspec in config.attacks:
        for setting in aspec.settings():
            key = (aspec.name, repr(sorted(setting.items())))
            rs = {t: by_suspect.get((t, key), []) for t in titles}
            if not any(rs.values()):
                continue
            first = next(r for t in titles for r in rs[t])
            label = _label(aspec.name, dict(first.setting), config.model, aspec.name not in seen)
            seen.add(aspec.name)
            line = [label, _acc([float(r.accuracy or 0) for r in rs[titles[0]]])]
            columns = [(t, [bool(r.metrics["verified"]) for r in rs[t]]) for t in titles]
            if wm_title:
                columns.append((wm_title, [bool(r.metrics["verified"]) for r in marks.get(key, [])]))
            for name, flags in columns:
                bold = bool(flags) and sum(flags) == 0 and previous[aspec.name].get(name, 1) > 0
                previous[aspec.name][name] = sum(flags)
                if name in rs:
                    line.append(cells(name, rs[name], bold))
                else:
                    line.append(_count(flags, bold) if flags else "–")
            body.append(line)
    models: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.kind == "fp-model":
            models[str(r.scheme)].append(float(r.accuracy or 0))
    for label in dict.fromkeys(e["label"] for t in titles for e in entries[t]):
        es = {t: [e for e in entries[t] if e["label"] == label] for t in titles}
        count = len({e["seed"] for e in es[titles[0]]})
        line = [
            f"negatives: {count} {MODELS.get(label, label)} ({len(es[titles[0]])} comparisons)",
            _acc(models[label]),
        ]
        for t in titles:
            false = sum(bool(e["verified"]) for e in es[t])
            text = f"{false}/{len(es[t])} false"
            line.append(f"{mean_std([float(e['score']) for e in es[t]])[0]:.3f}, " + (f"**{text}**" if false else text))
        if wm_title:
            line.append("")
        body.append(line)
    return table(header, body)


def lock(folder: Path) -> str:
    run = open_run(folder)
    config = run.read_config()
    if config.fingerprints is None:
        raise SystemExit(f"{folder}: the run has no fingerprints section")
    titles = [s.title for s in config.fingerprints.schemes]
    rows = [r for r in run.rows() if r.kind == "fingerprint" and "then_lock" in r.metrics]
    seeds = sorted({r.seed for r in rows})
    by = {(str(r.scheme), r.seed): r.metrics["then_lock"] for r in rows}
    classes = 10
    target = 100.0 / classes + 2.0
    scheme = rows[0].metrics["then_lock"]["scheme"] if rows else "?"
    header = ["seed", f"locked acc % ({scheme}; target ≤ {target:g})"]
    header += [f"{SCHEMES.get(t, t)} on the locked model" for t in titles]
    header.append("unlocked: bit-exact, verified by every fingerprint")
    body = []
    for seed in seeds:
        ms = [by[(t, seed)] for t in titles if (t, seed) in by]
        acc = 100 * float(ms[0]["locked_accuracy"])
        line = [str(seed), f"**{acc:.2f}**" if acc > target + 1e-9 else f"{acc:.2f}"]
        for t in titles:
            m = by.get((t, seed))
            line.append(
                "–"
                if m is None
                else f"{m['locked_score']:.3f} ({'verified' if m['locked_verified'] else 'not verified'})"
            )
        exact = all(m["unlocked_bit_exact"] for m in ms)
        verified = all(m["unlocked_verified"] for m in ms)
        line.append(f"{'yes' if exact else 'no'}, {'yes' if verified else 'no'}")
        body.append(line)
    return table(header, body)


TABLES = {"suspects": suspects, "lock": lock}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a fingerprint evaluation's run folder (config.yaml, results.jsonl)")
    parser.add_argument("--table", choices=sorted(TABLES), required=True, help="which table to print")
    args = parser.parse_args()
    print(TABLES[args.table](args.run))


if __name__ == "__main__":
    main()
