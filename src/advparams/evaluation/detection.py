"""The detection study: the config's backdoor detectors against its backdoors.

Units (``B`` a backdoor's label, ``S`` the seed):

* ``detect/B/seedS`` after ``backdoor/B/seedS``: every detector is fitted on the
  backdoored model with the defender's clean data (the last ``clean_samples`` test
  images, disjoint from what is scored) and calibrated for its ``frr``; the first
  ``eval_samples`` test images are scored clean and triggered; one ``detection`` row per
  detector (TPR at each calibrated rate, FPR, AUC, perturbation norms, time per image,
  Neural Cleanse's verdict on the model);
* ``inspect/seedS`` after ``train/seedS`` (and ``inspect/null/seedN`` after ``null/seedN``):
  the detectors that inspect models judge a clean model (an ``inspection`` row each), the
  reference for the anomaly indices of the backdoored ones;
* ``sanitise/B/D/seedS`` after ``backdoor/B/seedS``: the poisoned training set (exactly as
  the backdoor made it) is screened with detector ``D`` (of ``sanitise_with``) fitted on the
  backdoored model, the architecture is trained again from the seed on the samples
  kept, and its clean accuracy and ASR are measured (a ``sanitise`` row).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from advparams.backdoors import BACKDOORS, load_trigger
from advparams.backdoors.measure import measure_backdoor
from advparams.data.base import ImageDataset
from advparams.detectors import DETECTORS, Detector, sanitise
from advparams.detectors.measure import defender_split, measure_detector
from advparams.errors import ConfigError
from advparams.evaluation.context import (
    SectionStudy,
    backdoor_paths,
    backdoor_unit,
    null_seeds,
    null_unit,
    train_unit,
    with_seed,
)
from advparams.evaluation.detection_config import DetectionSection, DetectorSpec
from advparams.evaluation.engine import Unit
from advparams.evaluation.rows import ResultRow, row_key
from advparams.training import train_from_seed


class DetectionStudy(SectionStudy[DetectionSection]):
    """Backdoor detectors against the config's backdoors, on inputs, models and training sets."""

    name = "detection"
    section_key = "detection"

    def _screened(self) -> list[str]:
        backdoors = self.ctx.config.backdoors
        titles = [b.title for b in backdoors.attacks] if backdoors is not None else []
        return list(self.section.backdoors) or titles

    def _inspectors(self) -> list[DetectorSpec]:
        return [d for d in self.section.detectors if DETECTORS.get(d.name).inspects_model]

    def units(self) -> list[Unit]:
        cfg = self.ctx.config
        if cfg.detection is None:
            return []
        out: list[Unit] = []
        for seed in cfg.seeds:
            for title in self._screened():
                out.append(
                    Unit(
                        f"detect/{title}/seed{seed}",
                        self.name,
                        {"seed": seed, "backdoor": title},
                        (backdoor_unit(title, seed),),
                    )
                )
            for title in self.section.sanitise:
                for d in self.section.sanitisers:
                    out.append(
                        Unit(
                            f"sanitise/{title}/{d.title}/seed{seed}",
                            self.name,
                            {"seed": seed, "backdoor": title, "sanitise": d.title},
                            (backdoor_unit(title, seed),),
                        )
                    )
        if self._inspectors():
            for seed in cfg.seeds:
                out.append(Unit(f"inspect/seed{seed}", self.name, {"seed": seed, "clean": "seed"}, (train_unit(seed),)))
            for seed in null_seeds(cfg):
                out.append(
                    Unit(f"inspect/null/seed{seed}", self.name, {"seed": seed, "clean": "null"}, (null_unit(seed),))
                )
        return out

    def done_by_rows(self, unit: Unit, keys: set[tuple[Any, ...]]) -> bool:
        p, seed = unit.params, int(unit.params["seed"])
        if "clean" in p:
            return all(row_key("inspection", seed, "clean", d.title) in keys for d in self._inspectors())
        if p.get("sanitise"):
            return row_key("sanitise", seed, str(p["backdoor"]), str(p["sanitise"])) in keys
        return all(row_key("detection", seed, str(p["backdoor"]), d.title) in keys for d in self.section.detectors)

    def run(self, unit: Unit) -> list[ResultRow]:
        p, seed = unit.params, int(unit.params["seed"])
        if "clean" in p:
            return self._inspect_clean(seed, str(p["clean"]))
        if p.get("sanitise"):
            return [self._sanitise(str(p["backdoor"]), self.section.spec(str(p["sanitise"])), seed)]
        return self._detect(str(p["backdoor"]), seed)

    # -- data -----------------------------------------------------------------------
    def _split(self) -> tuple[ImageDataset, ImageDataset]:
        """(scored test images, the defender's clean data): disjoint parts of the test set."""
        test, section = self.ctx.test, self.section
        n = len(test)
        if section.eval_samples + section.clean_samples > n:
            raise ConfigError(
                f"detection needs eval_samples + clean_samples ({section.eval_samples} + "
                f"{section.clean_samples}) test images; the run has {n}"
            )
        return defender_split(test, section.eval_samples, section.clean_samples)

    def _fitted(self, spec: DetectorSpec, model: torch.nn.Module, seed: int, defender: ImageDataset) -> Detector[Any]:
        options = with_seed(DETECTORS.get(spec.name), dict(spec.options), seed)
        det = DETECTORS.build(spec.name, options)
        det.fit(model, defender, generator=torch.Generator().manual_seed(seed))
        return det

    # -- units ----------------------------------------------------------------------
    def _detect(self, title: str, seed: int) -> list[ResultRow]:
        ctx, section = self.ctx, self.section
        model_path, trigger_path = backdoor_paths(ctx.out, title, seed)
        model, trigger = ctx.load(model_path), load_trigger(trigger_path).trigger
        scored, defender = self._split()
        rows = []
        for spec in section.detectors:
            start = time.perf_counter()
            det = self._fitted(spec, model, seed, defender)
            metrics = measure_detector(det, model, trigger, scored, frrs=section.frrs, keep_scores=section.keep_scores)
            metrics["options"] = det.config_dict()
            metrics["detector"] = spec.name
            rows.append(
                ctx.row(
                    "detection", seed, title, attack=spec.title, metrics=metrics, seconds=time.perf_counter() - start
                )
            )
        return rows

    def _inspect_clean(self, seed: int, which: str) -> list[ResultRow]:
        ctx = self.ctx
        model = ctx.model_of(seed) if which == "seed" else ctx.load(ctx.run.null_path(seed))
        _, defender = self._split()
        rows = []
        for spec in self._inspectors():
            start = time.perf_counter()
            det = self._fitted(spec, model, seed, defender)
            metrics = {
                "inspection": det.inspection,
                "model": which,
                "detector": spec.name,
                "options": det.config_dict(),
            }
            rows.append(
                ctx.row(
                    "inspection", seed, "clean", attack=spec.title, metrics=metrics, seconds=time.perf_counter() - start
                )
            )
        return rows

    def _sanitise(self, title: str, spec: DetectorSpec, seed: int) -> ResultRow:
        ctx, cfg = self.ctx, self.ctx.config
        assert cfg.backdoors is not None
        bspec = cfg.backdoors.spec(title)
        backdoor = BACKDOORS.build(bspec.name, with_seed(BACKDOORS.get(bspec.name), dict(bspec.options), seed))
        start = time.perf_counter()
        poisoned = backdoor.poison_dataset(ctx.train)
        model_path, _ = backdoor_paths(ctx.out, title, seed)
        _, defender = self._split()
        det = self._fitted(spec, ctx.load(model_path), seed, defender)
        screened = sanitise(det, poisoned.data)
        truth = poisoned.plan.indices
        retrained = train_from_seed(
            cfg.model, ctx.model_arguments(), screened.data, cfg.train, seed=seed, device=ctx.device
        ).model.eval()
        test = ctx.test
        asr_samples = cfg.backdoors.asr_samples
        if asr_samples is not None and asr_samples < len(test):
            test = test.subset(torch.arange(asr_samples))
        after = measure_backdoor(retrained, poisoned.trigger, test)
        metrics = {
            "detector": spec.name,
            "options": det.config_dict(),
            "train_samples": len(poisoned.data),
            "poisoned": int(truth.numel()),
            "flagged": int(screened.flagged.numel()),
            "flagged_poisoned": int(torch.isin(screened.flagged, truth).sum()),
            "recall": screened.recall(truth),
            "precision": screened.precision(truth),
            "kept": len(screened.data),
            "screen_seconds": screened.seconds,
            "asr_after": after["asr"],
            "asr_after_mean": after["asr_mean"],
        }
        return ctx.row(
            "sanitise",
            seed,
            title,
            attack=spec.title,
            accuracy=ctx.accuracy(retrained),
            metrics=metrics,
            seconds=time.perf_counter() - start,
        )


__all__ = ["DetectionStudy"]
