"""The models study: the trained (or loaded) model of every seed, and the null models.

Units: ``train/seed<S>`` (a ``clean`` row) and ``null/seed<S>`` (a ``null`` row, only
when the run has watermarks or detection). Both save their model in the run folder, where the other
studies' units load it.
"""

from __future__ import annotations

from typing import Any

from advparams.evaluation.context import RunStudy, null_seeds, null_unit, train_unit
from advparams.evaluation.engine import Unit
from advparams.evaluation.rows import ResultRow, row_key


class ModelsStudy(RunStudy):
    """Trains (or loads, where the config names a checkpoint) one model per seed."""

    name = "models"

    def units(self) -> list[Unit]:
        nulls = [Unit(null_unit(s), self.name, {"seed": s, "null": True}) for s in null_seeds(self.ctx.config)]
        return nulls + [Unit(train_unit(s), self.name, {"seed": s}) for s in self.ctx.config.seeds]

    def done_by_rows(self, unit: Unit, keys: set[tuple[Any, ...]]) -> bool:
        seed, run = int(unit.params["seed"]), self.ctx.run
        if unit.params.get("null"):
            return row_key("null", seed) in keys and run.null_path(seed).exists()
        loaded = seed in self.ctx.config.checkpoints
        return row_key("clean", seed) in keys and (loaded or run.model_path(seed).exists())

    def run(self, unit: Unit) -> list[ResultRow]:
        ctx, seed = self.ctx, int(unit.params["seed"])
        if unit.params.get("null"):
            _, acc, seconds = ctx.train_and_save(seed, ctx.run.null_path(seed))
            return [ctx.row("null", seed, accuracy=acc, seconds=seconds)]
        if seed in ctx.config.checkpoints:
            model = ctx.model_of(seed)
            metrics = {"checkpoint": ctx.config.checkpoints[seed], **ctx.quality(model)}
            return [ctx.row("clean", seed, accuracy=ctx.accuracy(model), metrics=metrics)]
        model, acc, seconds = ctx.train_and_save(seed, ctx.run.model_path(seed))
        metrics = {"epochs": ctx.config.train.epochs, **ctx.quality(model)}
        return [ctx.row("clean", seed, accuracy=acc, seconds=seconds, metrics=metrics)]


__all__ = ["ModelsStudy"]
