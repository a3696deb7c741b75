"""Implanting a backdoor in a checkpoint on disk: ``advparams backdoor implant``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advparams._rng import isolated_seed
from advparams.backdoors import BACKDOORS, implant_from_seed, is_trigger_file, save_trigger
from advparams.backdoors.measure import measure_backdoor
from advparams.checkpoint import save_like
from advparams.data import ImageDataset
from advparams.errors import ConfigError
from advparams.files import check_output, integer
from advparams.training import TrainConfig
from advparams.usecases.models import distinct_paths, open_checkpoint

IMPLANT_COMMAND = "backdoor implant"
"""What a backdoored checkpoint's folder records as the command that made it."""
DEFAULT_SAMPLES = 2000
"""Test images measured when ``samples`` is not given (all of them when fewer)."""
MAX_SEED = 2**63 - 1
"""The largest backdoor seed."""


def measured_subset(test: ImageDataset, samples: int | None, dataset: str) -> ImageDataset:
    """The first ``samples`` test images (default: :data:`DEFAULT_SAMPLES`, or all when
    fewer); asking for more than the split holds is refused, not cut short."""
    if samples is None:
        samples = min(DEFAULT_SAMPLES, len(test))
    elif samples > len(test):
        raise ConfigError(
            f"--samples {samples} is more than the {len(test)} test images of {dataset}: choose at most {len(test)}"
        )
    return test.subset(torch.arange(samples)) if samples < len(test) else test


@dataclass(frozen=True)
class Implanted:
    """What :func:`implant_checkpoint` did (the trigger itself is only in its file)."""

    checkpoint: str
    out: Path
    trigger: Path
    backdoor: str
    dataset: str
    from_scratch: bool
    train_samples: int
    targets: tuple[int, ...]
    info: Mapping[str, Any]
    measures: Mapping[str, Any]
    test_samples: int | None
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary ``advparams backdoor implant --json`` prints."""
        kept = ("clean_accuracy", "asr", "reference_asr", "psnr", "ssim")
        return {
            "command": IMPLANT_COMMAND,
            "checkpoint": self.checkpoint,
            "out": str(self.out),
            "trigger": str(self.trigger),
            "backdoor": self.backdoor,
            "dataset": self.dataset,
            "from_scratch": self.from_scratch,
            "info": dict(self.info),
            **{k: self.measures[k] for k in kept if k in self.measures},
            "seconds": self.seconds,
        }


def implant_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    trigger: str | os.PathLike[str],
    *,
    backdoor: str = "badnets",
    options: Mapping[str, Any] | None = None,
    train: TrainConfig | None = None,
    from_scratch: bool = False,
    samples: int | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    evaluate: bool = True,
    force: bool = False,
    progress: Callable[[Any], None] | None = None,
) -> Implanted:
    """Trains the checkpoint folder ``checkpoint`` on a training set poisoned by registered
    ``backdoor`` (further, or anew from the backdoor's seed with ``from_scratch``), writes
    the trigger to ``trigger``, then the backdoored model to ``out``; with ``evaluate``,
    measures clean accuracy and attack success on ``samples`` test images."""
    start = time.perf_counter()
    cfg = train or TrainConfig(epochs=5, batch_size=128, lr=1e-3)
    distinct_paths(checkpoint, out, trigger)
    check_output(out, force=force, made_by=IMPLANT_COMMAND)
    check_output(trigger, force=force, accept=is_trigger_file)
    built = BACKDOORS.build(backdoor, dict(options or {}))
    seed = integer(getattr(built.config, "seed", 0), what="backdoor option seed", lo=0, hi=MAX_SEED, error=ConfigError)
    opened = open_checkpoint(checkpoint, dataset=dataset, data_dir=data_dir, device=device, train=True,
                             test=evaluate, unlocked="unlock it first")  # fmt: skip
    ckpt, data, dev = opened.checkpoint, opened.train, opened.device
    assert data is not None
    test = (
        None if opened.test is None else measured_subset(opened.test, samples, opened.dataset)
    )  # refused before training
    if from_scratch:
        res = implant_from_seed(built, ckpt.architecture, dict(ckpt.arguments), data, cfg, seed=seed, device=dev,
                                progress=progress)  # fmt: skip
    else:
        with isolated_seed(seed, devices=[dev] if dev.type == "cuda" else []):  # dropout: reproducible
            res = built.implant(ckpt.model, data, train=cfg, progress=progress)
    measures = {} if test is None else measure_backdoor(res.model, res.trigger, test, reference=ckpt.model)
    save_trigger(res.trigger, trigger, backdoor=backdoor, config=built.config_dict(), force=force)  # the secret first
    record = {"backdoor": backdoor, "source_checkpoint": str(checkpoint), **res.info}
    save_like(ckpt, res.model, out, dataset=opened.dataset, record=record, force=force, made_by=IMPLANT_COMMAND)
    return Implanted(str(checkpoint), Path(out), Path(trigger), backdoor, opened.dataset, from_scratch, len(data),
                     tuple(res.trigger.targets), dict(res.info), measures, None if test is None else len(test),
                     time.perf_counter() - start)  # fmt: skip


__all__ = ["DEFAULT_SAMPLES", "IMPLANT_COMMAND", "MAX_SEED", "Implanted", "implant_checkpoint", "measured_subset"]
