"""The backdoors study: every backdoor of the config implanted at every seed, then measured.

Units: ``backdoor/B/seedS`` (``B`` the backdoor's label) after ``train/seedS``: the
architecture is built from seed ``S`` exactly as the seed's clean model was and trained
with the same options, batch order and in-model randomness, but on the poisoned set, so
the clean model of the seed is the backdoored model's twin without poison. The unit
measures clean accuracy, ASR per trigger (target-class samples not counted), PSNR and
SSIM, and the grids the backdoor's ``measure`` asks for (codec x quality; held-out
physical transformations); it saves the model and its trigger file in the run folder and
writes one ``backdoor`` row.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from advparams.backdoors import BACKDOORS, implant_from_seed, save_trigger
from advparams.backdoors.measure import measure_backdoor
from advparams.backdoors.ptb import PTBConfig
from advparams.checkpoint import save_checkpoint
from advparams.evaluation.backdoor_config import BackdoorSection, BackdoorSpec
from advparams.evaluation.context import SectionStudy, backdoor_paths, backdoor_unit, train_unit, with_seed
from advparams.evaluation.engine import Unit
from advparams.evaluation.rows import ResultRow, row_key


class BackdoorsStudy(SectionStudy[BackdoorSection]):
    """Implanting and measuring the config's backdoors."""

    name = "backdoors"
    section_key = "backdoors"

    def units(self) -> list[Unit]:
        if not self.present:
            return []
        return [
            Unit(
                backdoor_unit(spec.title, seed),
                self.name,
                {"seed": seed, "backdoor": spec.title},
                (train_unit(seed),),
            )
            for seed in self.ctx.config.seeds
            for spec in self.section.attacks
        ]

    def done_by_rows(self, unit: Unit, keys: set[tuple[Any, ...]]) -> bool:
        seed, title = int(unit.params["seed"]), str(unit.params["backdoor"])
        return row_key("backdoor", seed, title) in keys and all(
            p.exists() for p in backdoor_paths(self.ctx.out, title, seed)
        )

    def run(self, unit: Unit) -> list[ResultRow]:
        seed = int(unit.params["seed"])
        return [self._implant(self.section.spec(str(unit.params["backdoor"])), seed)]

    def _implant(self, spec: BackdoorSpec, seed: int) -> ResultRow:
        ctx, cfg, section = self.ctx, self.ctx.config, self.section
        cls = BACKDOORS.get(spec.name)
        options = with_seed(cls, dict(spec.options), seed)
        backdoor = BACKDOORS.build(spec.name, options)
        arguments = ctx.model_arguments()
        # The seed's clean model is this one's twin: trained alike but for the poison.
        res = implant_from_seed(backdoor, cfg.model, arguments, ctx.train, cfg.train, seed=seed, device=ctx.device)
        start = time.perf_counter()
        test = ctx.test
        if section.asr_samples is not None and section.asr_samples < len(test):
            test = test.subset(torch.arange(section.asr_samples))
        clean = ctx.model_of(seed)
        measures = measure_backdoor(
            res.model,
            res.trigger,
            test,
            reference=clean,
            codecs=section.codecs if "compression" in spec.measure else (),
            qualities=section.qualities if "compression" in spec.measure else (),
            transformations=section.transformations if "physical" in spec.measure else None,
            combined_ranges=PTBConfig().ranges(),
            seed=seed,
        )
        metrics: dict[str, Any] = {
            "options": options,
            "info": res.info,
            "clean_accuracy_twin": ctx.accuracy(clean),
            "twin": "loaded" if seed in cfg.checkpoints else "trained",
            "measure_seconds": time.perf_counter() - start,
            "asr_samples": len(test),
            **measures,
        }
        model_path, trigger_path = backdoor_paths(ctx.out, spec.title, seed)
        model_path.parent.mkdir(parents=True, exist_ok=True)
        save_trigger(res.trigger, trigger_path, backdoor=spec.name, config=backdoor.config_dict(), force=True)
        save_checkpoint(
            res.model, model_path, architecture=cfg.model, arguments=arguments, dataset=cfg.dataset, force=True
        )
        return ctx.row(
            "backdoor",
            seed,
            spec.title,
            accuracy=ctx.accuracy(res.model),
            metrics=metrics,
            seconds=float(res.info["seconds"]),
        )


__all__ = ["BackdoorsStudy", "backdoor_paths"]
