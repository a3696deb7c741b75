"""What the studies of an evaluation share: the run, its data, and the names of shared units.

A :class:`RunContext` is plain configuration (it travels to Ray workers); the data sets
are loaded on first use in each process. Units that make an artefact several studies
need are named here (:func:`train_unit`, :func:`null_unit`, :func:`backdoor_unit` with
:func:`backdoor_paths`), so that a study can depend
on another study's unit without importing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast

import torch
from torch import nn

from advparams.checkpoint import load_checkpoint, save_checkpoint
from advparams.data import DATASETS, ImageDataset, load_dataset
from advparams.errors import ConfigError
from advparams.evaluation.config import EvalConfig
from advparams.evaluation.engine import Study
from advparams.evaluation.rows import ResultRow
from advparams.evaluation.run import RunFolder
from advparams.metrics import accuracy
from advparams.training import train_from_seed
from advparams.usecases.models import training_subset

NULL_SEED = 1000
"""Null models (independently trained, for watermark thresholds) have seeds 1000, 1001, ...:
never a seed of the run."""

# Attack info entries that are too large for a row; their sizes are kept as counts.
_BULKY = ("suspects", "samples", "leaked_positions")


# The data of the last run context of this process (one entry: a worker runs many units of
# the same run, each arriving with a fresh copy of the context).
_LOADED: dict[str, Any] = {}


def train_unit(seed: int) -> str:
    """The id of the unit that trains (or loads) the model of ``seed``."""
    return f"train/seed{seed}"


def null_unit(seed: int) -> str:
    """The id of the unit that trains the null model of ``seed``."""
    return f"null/seed{seed}"


def backdoor_unit(title: str, seed: int) -> str:
    """The id of the unit that implants backdoor ``title`` at ``seed``."""
    return f"backdoor/{title}/seed{seed}"


def backdoor_paths(out: Path, title: str, seed: int) -> tuple[Path, Path]:
    """The backdoored model of backdoor ``title`` at ``seed`` in run folder ``out``, and its trigger."""
    name = f"{title}-seed{seed}"
    return out / "backdoors" / name, out / "backdoors" / f"{name}.trigger"


def null_seeds(config: EvalConfig) -> list[int]:
    """The seeds of the run's null models (none unless a family wants them:
    :attr:`advparams.house.Family.wants_null_models`; they calibrate watermark and
    fingerprint thresholds and are the clean models detectors inspect)."""
    from advparams.house import families

    wanted = any(f.wants_null_models is not None and f.wants_null_models(config) for f in families())
    return [NULL_SEED + i for i in range(config.null_models)] if wanted else []


def with_seed(cls: Any, options: dict[str, Any], seed: int) -> dict[str, Any]:
    """``options`` with the run's ``seed`` filled in where ``cls.Config`` has a seed."""
    if "seed" in {f.name for f in fields(cls.Config)}:
        return {**options, "seed": seed}
    return dict(options)


def slim_info(info: dict[str, Any]) -> dict[str, Any]:
    """An attack's info without the entries too large (or too revealing) for a row."""
    out: dict[str, Any] = {}
    for k, v in info.items():
        if k in _BULKY:
            continue
        if isinstance(v, list) and len(v) > 100:
            out[f"{k}_count"] = len(v)
            continue
        out[k] = v
    return out


@dataclass
class RunContext:
    """One run's configuration, folder and device, and its data (loaded on first use).

    Args:
        config: the evaluation.
        out: the run folder.
        device: where units compute.
    """

    config: EvalConfig
    out: Path
    device: torch.device
    _data: tuple[ImageDataset, ImageDataset] | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_data"] = None  # each worker loads its own copy
        return state

    @property
    def run(self) -> RunFolder:
        """The run folder."""
        return RunFolder(self.out)

    @property
    def train(self) -> ImageDataset:
        """The training data (``train_samples`` of it, a fixed subset)."""
        return self._datasets()[0]

    @property
    def test(self) -> ImageDataset:
        """The test data (its first ``test_samples``)."""
        return self._datasets()[1]

    def _datasets(self) -> tuple[ImageDataset, ImageDataset]:
        cfg = self.config
        which = (cfg.dataset, cfg.data_dir, cfg.train_samples, cfg.test_samples)
        if self._data is None and _LOADED.get("which") == which:
            self._data = _LOADED["data"]  # a worker process keeps the data between units
        if self._data is None:
            train_data = training_subset(load_dataset(cfg.dataset, "train", cfg.data_dir), cfg.train_samples)
            test_data = load_dataset(cfg.dataset, "test", cfg.data_dir)
            if cfg.test_samples is not None and cfg.test_samples < len(test_data):
                test_data = test_data.subset(torch.arange(cfg.test_samples))
            self._data = (train_data, test_data)
            _LOADED.clear()
            _LOADED.update(which=which, data=self._data)
        return self._data

    def accuracy(self, model: nn.Module) -> float:
        """Test accuracy of ``model`` (a language model's: next-token accuracy)."""
        return accuracy(model, self.test)

    def quality(self, model: nn.Module) -> dict[str, float]:
        """What rows record beside the accuracy, by the data's task: nothing for a
        classifier; a language model's test ``perplexity`` (:mod:`advparams.tasks`)."""
        from advparams.tasks import CausalLM, perplexity, task_of

        return {"perplexity": perplexity(model, self.test)} if isinstance(task_of(self.test), CausalLM) else {}

    def bar(self) -> dict[str, float]:
        """A language model's uselessness bar (``perplexity_bar``: the unigram model's test
        perplexity), for the lock rows; nothing for a classifier."""
        from advparams.tasks import CausalLM, task_of

        task = task_of(self.test)
        if isinstance(task, CausalLM) and task.bar_nll is not None:
            return {"perplexity_bar": math.exp(task.bar_nll)}
        return {}

    def model_arguments(self) -> dict[str, Any]:
        """The architecture's arguments: the data set's defaults and the config's."""
        return {**DATASETS.get(self.config.dataset).model_options, **dict(self.config.model_options)}

    def load(self, path: Path) -> nn.Module:
        """A checkpoint of the run (or one the config names), on the run's device."""
        return load_checkpoint(path, device=self.device).model

    def model_of(self, seed: int) -> nn.Module:
        """The model of ``seed`` (made by the unit :func:`train_unit` names)."""
        path = self.config.checkpoints.get(seed) or self.run.model_path(seed)
        return self.load(Path(path))

    def row(self, kind: str, seed: int, scheme: str | None = None, **fields_: Any) -> ResultRow:
        """A row of this run."""
        return ResultRow(self.config.name, kind, seed, scheme, **fields_)

    def train_and_save(
        self, seed: int, path: Path, *, architecture: str | None = None, options: dict[str, Any] | None = None
    ) -> tuple[nn.Module, float, float]:
        """Trains the architecture (the run's, or ``architecture`` with ``options`` over
        the data set's defaults) from ``seed``, saves it at ``path``; (model, accuracy, seconds)."""
        import time

        cfg = self.config
        arch = architecture or cfg.model
        if architecture is None:
            options = self.model_arguments()
        else:
            options = {**DATASETS.get(cfg.dataset).model_options, **dict(options or {})}
        start = time.perf_counter()
        result = train_from_seed(arch, options, self.train, cfg.train, seed=seed, device=self.device)
        model = result.model.eval()
        seconds = time.perf_counter() - start
        acc = self.accuracy(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(
            model,
            path,
            architecture=arch,
            arguments=options,
            dataset=cfg.dataset,
            record={"seed": seed, "test_accuracy": acc},
            force=True,
        )
        return model, acc, seconds


class RunStudy(Study):
    """A study built from the run's :class:`RunContext` (what the house builds each
    family's study from)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx


S = TypeVar("S")


class SectionStudy(RunStudy, Generic[S]):
    """The study of one config section (:attr:`section_key`): no units without it."""

    section_key: ClassVar[str]

    @property
    def present(self) -> bool:
        """Whether the config has this study's section."""
        return self.ctx.config.sections.get(self.section_key) is not None

    @property
    def section(self) -> S:
        """The config's section (one clear error where it has none)."""
        if not self.present:
            raise ConfigError(f"the config has no {self.section_key} section")
        return cast(S, self.ctx.config.sections[self.section_key])


__all__ = [
    "RunStudy",
    "SectionStudy",
    "NULL_SEED",
    "RunContext",
    "backdoor_paths",
    "backdoor_unit",
    "null_seeds",
    "null_unit",
    "slim_info",
    "train_unit",
    "with_seed",
]
