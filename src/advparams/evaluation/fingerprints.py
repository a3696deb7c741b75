"""The fingerprints study: ownership fingerprints of every seed's model, against copies and strangers.

Units (``F`` a fingerprint's label, ``S`` the seed, ``A`` an attack):

* ``fp-model/M/seedN``: an independently trained negative, of the run's architecture
  (``M`` = the run's model, seeds 2000, ...) or of another (``fingerprints.other_models``,
  seeds 3000, ...); an ``fp-model`` row, the model in the run folder;
* ``fingerprint/F/seedS`` after ``train/seedS``, the null models and the negatives: the
  fingerprint of the seed's model (saved), its threshold calibrated on the null models at
  ``fingerprints.fpr``, the scores of the owner's model, of every negative, and of the
  model locked with ``lock_with`` and unlocked again; a ``fingerprint`` row;
* ``fp-attack/A/SETTING/seedS`` after every ``fingerprint/.../seedS``: the attack is run
  once on the seed's model and every fingerprint verifies the result; an ``fp-suspect``
  row per fingerprint.

Attacks that need a lock's key or that wrap the model in a query filter are not run on
fingerprints (they are about locks and watermark queries).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advparams.attacks import ATTACKS
from advparams.errors import ConfigError
from advparams.evaluation.context import SectionStudy, null_seeds, null_unit, slim_info, train_unit, with_seed
from advparams.evaluation.engine import Unit
from advparams.evaluation.fingerprint_config import NEGATIVE_SEED, OTHER_SEED, FingerprintSection, FingerprintSpec
from advparams.evaluation.rows import ResultRow, row_key
from advparams.fingerprint import state_equal
from advparams.fingerprints import FINGERPRINTS, Fingerprint, FingerprintScheme, load_fingerprint, save_fingerprint
from advparams.schemes import SCHEMES
from advparams.verification import ScoreCalibration, calibrate_scores


def fingerprint_path(out: Path, title: str, seed: int) -> Path:
    """The fingerprint ``title`` of the model of ``seed`` in run folder ``out``."""
    return out / "fingerprints" / f"{title}-seed{seed}.fingerprint"


def negative_path(out: Path, label: str, seed: int) -> Path:
    """The negative model ``label``/``seed`` in run folder ``out``."""
    return out / "fingerprints" / "negatives" / f"{label}-seed{seed}"


def calibration_of(metrics: dict[str, Any]) -> ScoreCalibration:
    """The calibration a fingerprint row recorded."""
    return ScoreCalibration(
        float(metrics["threshold"]),
        float(metrics["fpr"]),
        float(metrics["null_mean"]),
        float(metrics["null_std"]),
        tuple(float(v) for v in metrics["null_scores"]),
    )


def _timed_score(scheme: FingerprintScheme[Any], model: nn.Module, fp: Fingerprint) -> tuple[float, float]:
    start = time.perf_counter()
    score = scheme.score(model, fp)
    return score, time.perf_counter() - start


class FingerprintsStudy(SectionStudy[FingerprintSection]):
    """Fingerprints of the config's models, verified on attacked copies and on strangers."""

    name = "fingerprints"
    section_key = "fingerprints"

    def negatives(self) -> list[dict[str, Any]]:
        """Every negative: label, architecture, options, seed (plain data)."""
        cfg, section = self.ctx.config, self.section
        out: list[dict[str, Any]] = [
            {"label": cfg.model, "model": None, "options": None, "seed": NEGATIVE_SEED + i}
            for i in range(section.negatives)
        ]
        for o in section.other_models:
            out += [
                {"label": o.title, "model": o.model, "options": dict(o.options), "seed": OTHER_SEED + i}
                for i in range(o.count)
            ]
        return out

    def attacks(self) -> list[tuple[int, dict[str, Any]]]:
        """``(index in the config's attacks, setting)`` of every attack run on fingerprints."""
        out = []
        for a, aspec in enumerate(self.ctx.config.attacks):
            cls = ATTACKS.get(aspec.name)
            if cls.uses_key or cls.filters_queries:
                continue
            out += [(a, setting) for setting in aspec.settings()]
        return out

    def units(self) -> list[Unit]:
        cfg = self.ctx.config
        if cfg.fingerprints is None:
            return []
        negatives = [
            Unit(f"fp-model/{n['label']}/seed{n['seed']}", self.name, {"negative": n}) for n in self.negatives()
        ]
        out = list(negatives)
        nulls = tuple(null_unit(s) for s in null_seeds(cfg))
        for seed in cfg.seeds:
            marks = [
                Unit(
                    f"fingerprint/{spec.title}/seed{seed}",
                    self.name,
                    {"seed": seed, "fingerprint": spec.title},
                    (train_unit(seed), *nulls, *(u.id for u in negatives)),
                )
                for spec in self.section.schemes
            ]
            out += marks
            for a, setting in self.attacks():
                name = cfg.attacks[a].name
                sid = json.dumps(setting, sort_keys=True, separators=(",", ":"))
                out.append(
                    Unit(
                        f"fp-attack/{name}/{sid}/seed{seed}",
                        self.name,
                        {"seed": seed, "attack": a, "setting": setting},
                        tuple(m.id for m in marks),
                    )
                )
        return out

    def done_by_rows(self, unit: Unit, keys: set[tuple[Any, ...]]) -> bool:
        p = unit.params
        if "negative" in p:
            n = p["negative"]
            return row_key("fp-model", int(n["seed"]), str(n["label"])) in keys
        seed = int(p["seed"])
        if "attack" in p:
            name = self.ctx.config.attacks[int(p["attack"])].name
            return all(
                row_key("fp-suspect", seed, s.title, name, dict(p["setting"])) in keys for s in self.section.schemes
            )
        title = str(p["fingerprint"])
        return row_key("fingerprint", seed, title) in keys and fingerprint_path(self.ctx.out, title, seed).exists()

    def run(self, unit: Unit) -> list[ResultRow]:
        p = unit.params
        if "negative" in p:
            return [self._negative(dict(p["negative"]))]
        if "attack" in p:
            return self._attack(int(p["seed"]), int(p["attack"]), dict(p["setting"]))
        return [self._fingerprint(self.section.spec(str(p["fingerprint"])), int(p["seed"]))]

    def _scheme(self, spec: FingerprintSpec, seed: int) -> FingerprintScheme[Any]:
        cls = FINGERPRINTS.get(spec.name)
        return FINGERPRINTS.build(spec.name, with_seed(cls, dict(spec.options), seed))  # type: ignore[no-any-return]

    def _negative(self, n: dict[str, Any]) -> ResultRow:
        ctx = self.ctx
        path = negative_path(ctx.out, str(n["label"]), int(n["seed"]))
        _, acc, seconds = ctx.train_and_save(int(n["seed"]), path, architecture=n["model"], options=n["options"])
        arch = n["model"] or ctx.config.model
        return ctx.row(
            "fp-model", int(n["seed"]), str(n["label"]), accuracy=acc, seconds=seconds, metrics={"model": arch}
        )

    def _fingerprint(self, spec: FingerprintSpec, seed: int) -> ResultRow:
        ctx, cfg, section = self.ctx, self.ctx.config, self.section
        owner = ctx.model_of(seed)
        scheme = self._scheme(spec, seed)
        start = time.perf_counter()
        fp = scheme.extract(owner, ctx.train, generator=torch.Generator().manual_seed(seed))
        extract_seconds = time.perf_counter() - start
        verify_seconds: list[float] = []

        def score(model: nn.Module) -> float:
            s, t = _timed_score(scheme, model, fp)
            verify_seconds.append(t)
            return s

        null_scores = [score(ctx.load(ctx.run.null_path(s))) for s in null_seeds(cfg)]
        calibration = calibrate_scores(null_scores, section.fpr)
        own = calibration.verify(score(owner))
        negatives = []
        for n in self.negatives():
            v = calibration.verify(score(ctx.load(negative_path(ctx.out, str(n["label"]), int(n["seed"])))))
            negatives.append({"label": n["label"], "seed": n["seed"], "score": v.score, "verified": v.decision})
        metrics: dict[str, Any] = {
            "options": dict(fp.config),
            "probes": len(fp),
            "fpr": section.fpr,
            "threshold": calibration.threshold,
            "null_mean": calibration.null_mean,
            "null_std": calibration.null_std,
            "null_scores": null_scores,
            "score": own.score,
            "verified": own.decision,
            "p_value": own.p_value,
            "negatives": negatives,
            "negative_false_positives": sum(n["verified"] for n in negatives),
            "extract_seconds": extract_seconds,
        }
        if cfg.lock_with:
            metrics["then_lock"] = self._then_lock(owner, lambda m: calibration.verify(score(m)))
        metrics["verify_seconds"] = sum(verify_seconds) / len(verify_seconds)
        path = fingerprint_path(ctx.out, spec.title, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_fingerprint(fp, path, force=True)
        return ctx.row(
            "fingerprint", seed, spec.title, accuracy=ctx.accuracy(owner), metrics=metrics, seconds=extract_seconds
        )

    def _then_lock(self, owner: nn.Module, check: Any) -> dict[str, Any]:
        """Locks the owner's model with ``lock_with`` and unlocks it: both are verified."""
        spec = self.ctx.config.lock_with
        scheme = SCHEMES.build(str(spec["name"]), dict(spec.get("options") or {}))
        res = scheme.lock(owner, self.ctx.train, generator=torch.Generator().manual_seed(0))
        restored = scheme.unlock(res.model, res.key)
        locked, unlocked = check(res.model), check(restored)
        return {
            "scheme": str(spec["name"]),
            "locked_accuracy": self.ctx.accuracy(res.model),
            "locked_score": locked.score,
            "locked_verified": locked.decision,
            "unlocked_score": unlocked.score,
            "unlocked_verified": unlocked.decision,
            "unlocked_bit_exact": state_equal(restored, owner),
        }

    def _attack(self, seed: int, a: int, setting: dict[str, Any]) -> list[ResultRow]:
        ctx = self.ctx
        aspec = ctx.config.attacks[a]
        owner = ctx.model_of(seed)
        attack_cls = ATTACKS.get(aspec.name)
        options = with_seed(attack_cls, {**aspec.options, **setting}, seed)
        if attack_cls.scratch_baseline:
            options["scratch"] = False  # the suspect is compared with the negatives, not a fresh model
        res = ATTACKS.build(aspec.name, options).run(owner, ctx.train if attack_cls.uses_data else None)
        acc = ctx.accuracy(res.model)
        done = {r.key: r for r in ctx.run.rows()}
        rows = []
        for spec in self.section.schemes:
            fp_row = done.get(row_key("fingerprint", seed, spec.title))
            if fp_row is None:
                raise ConfigError(f"{ctx.out} has no fingerprint row for {spec.title} at seed {seed}")
            fp = load_fingerprint(fingerprint_path(ctx.out, spec.title, seed))
            score, seconds = _timed_score(self._scheme(spec, seed), res.model, fp)
            v = calibration_of(fp_row.metrics).verify(score)
            metrics = {
                "options": options,
                "info": slim_info(res.info),
                "score": v.score,
                "threshold": v.threshold,
                "p_value": v.p_value,
                "verified": v.decision,
                "verify_seconds": seconds,
                "attack_seconds": res.seconds,
            }
            rows.append(
                ResultRow(
                    ctx.config.name, "fp-suspect", seed, spec.title, aspec.name, setting, acc, metrics, res.seconds
                )
            )
        return rows


__all__ = ["FingerprintsStudy", "calibration_of", "fingerprint_path", "negative_path"]
