"""The backdoor family's shared parts: options, the poisoning plan, the training loop.

Every backdoor has one verb, :meth:`Backdoor.implant`: it makes the trigger, chooses the
training samples to poison (exactly ``round(poison_rate * N)``, at least one, drawn from
samples whose label is not their sub-trigger's target, so that each poisoned sample
teaches the trigger), and trains a copy of the given model on the poisoned set. With the
same initial model, training options and shuffling generator as a clean model, the two
are trained identically but for the poison: the clean-accuracy cost of a backdoor is
measured against exactly that twin.

A backdoor's trigger and poisoned samples come from its own ``seed``; training draws
(batch order) from the ``generator`` passed to :meth:`Backdoor.implant`.
"""

from __future__ import annotations

import copy
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from advparams._rng import isolated_seed
from advparams.backdoors.poison import PoisonPlan, apply_each, poison_count, poison_plan
from advparams.backdoors.triggers import Trigger
from advparams.data.base import DataLike, ImageDataset
from advparams.devices import model_device, model_float_dtype
from advparams.errors import AdvParamsError
from advparams.metrics.accuracy import logits_of
from advparams.registry import Configurable, Registry, validated
from advparams.training import TrainConfig, TrainProgress, make_optimizer

C = TypeVar("C")

BACKDOORS: Registry[Any] = Registry("backdoor")


@dataclass(frozen=True)
@validated
class BackdoorOptions:
    """Options every backdoor has.

    Attributes:
        poison_rate: share of the training set made into backdoor instances, in (0, 1);
            the count is ``round(poison_rate * N)``, at least 1.
        target: the target label (multi-target attacks: the first target).
        seed: seeds the trigger and the choice of poisoned samples.
    """

    poison_rate: float = 0.1
    target: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.poison_rate < 1.0:
            raise ValueError(f"poison_rate must be in (0, 1), got {self.poison_rate}")
        if self.target < 0:
            raise ValueError(f"target must be a class index, got {self.target}")


@dataclass
class Backdoored:
    """What :meth:`Backdoor.implant` returns.

    Attributes:
        model: the backdoored copy (the input model is not changed).
        trigger: the trigger (apply it with :meth:`Trigger.apply`; save it with
            :func:`advparams.backdoors.save_trigger`).
        info: JSON-ready facts: poisoned count (total and per sub-trigger), targets,
            epochs, seconds.
    """

    model: nn.Module
    trigger: Trigger
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class EpochBatch:
    """What a backdoor's loss sees of one training step.

    Attributes:
        x: the normalised batch (poisoned samples already carry their trigger).
        y: its labels (poisoned samples relabelled).
        slot: for each sample, its row in the epoch's poisoned set, or -1.
        extra: what the backdoor prepared for this epoch (:meth:`Backdoor._epoch_extra`).
        data: the epoch's training set (for its normalisation).
    """

    x: torch.Tensor
    y: torch.Tensor
    slot: torch.Tensor
    extra: Any
    data: ImageDataset


@dataclass(frozen=True)
class Poisoned:
    """A poisoned training set (see :meth:`Backdoor.poison_dataset`).

    Attributes:
        data: the training set with the backdoor instances in place (relabelled).
        plan: which samples were poisoned, with which sub-trigger and label.
        trigger: the trigger.
    """

    data: ImageDataset
    plan: PoisonPlan
    trigger: Trigger


class Backdoor(Configurable[C], ABC):
    """Base class of backdoor attacks; the constructor takes the configuration only.

    Attributes:
        fresh_each_epoch: True when the poisoned samples are made anew every epoch.
        survives: the conditions its paper claims it survives (``"compression"``,
            ``"physical"``): a report draws its curve there as the claim, and the other
            backdoors' as the comparison.
        paper_compression: its paper's ASR after each codec, ``codec -> (a normal
            backdoor's, this one's)`` in percent (empty: the paper gives none).
    """

    fresh_each_epoch: ClassVar[bool] = False
    survives: ClassVar[tuple[str, ...]] = ()
    paper_compression: ClassVar[Mapping[str, tuple[float, float]]] = {}

    @classmethod
    def paper_figure(cls, options: Mapping[str, Any]) -> str:
        """The paper's headline number for this backdoor with these options (its
        abstract's), or a dash where it has none."""
        return "–"

    @classmethod
    def robust_to(cls, condition: str, options: Mapping[str, Any]) -> bool:
        """Whether, with these options, it is trained to survive ``condition`` (one of
        :attr:`survives`)."""
        return condition in cls.survives

    @classmethod
    def trained_codecs(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        """The codecs its training sees (none unless it trains against compression)."""
        return ()

    def implant(
        self,
        model: nn.Module,
        data: DataLike,
        *,
        train: TrainConfig | None = None,
        generator: torch.Generator | None = None,
        progress: Callable[[TrainProgress], None] | None = None,
    ) -> Backdoored:
        """Trains a copy of ``model`` on ``data`` with backdoor instances mixed in.

        Args:
            model: the classifier to train (freshly initialised to poison training from
                scratch, or trained to poison a fine-tuning); it is not changed.
            data: the clean training set, an :class:`~advparams.data.ImageDataset`.
            train: how the copy is trained (default :class:`TrainConfig`).
            generator: the batch order; default: seeded from the config's ``seed``.
            progress: called after every step.
        """
        if not isinstance(data, ImageDataset):
            raise AdvParamsError(
                f"the {self.name} backdoor needs an ImageDataset (uint8 images and their normalisation)"
            )
        cfg = train or TrainConfig()
        seed = int(getattr(self.config, "seed", 0))
        own = torch.Generator().manual_seed(seed)
        trigger = self.make_trigger(data.input_shape, data.num_classes, own)
        outputs = _outputs(model, data)
        if max(trigger.targets) >= min(outputs, data.num_classes):
            raise AdvParamsError(
                f"target label {max(trigger.targets)} does not exist: the model has {outputs} outputs and the data "
                f"{data.num_classes} classes"
            )
        plan = self._plan(data, trigger, own)
        gen = generator if generator is not None else torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        net = self._train(model, data, trigger, plan, cfg, gen, own, progress)
        info = {
            "poisoned": len(plan),
            "poisoned_per_trigger": [int((plan.which == i).sum()) for i in range(len(trigger))],
            "train_samples": len(data),
            "targets": list(trigger.targets),
            "epochs": cfg.epochs,
            "seconds": time.perf_counter() - start,
        }
        return Backdoored(net, trigger, info)

    def _plan(self, data: ImageDataset, trigger: Trigger, own: torch.Generator) -> PoisonPlan:
        return poison_plan(data.labels, trigger.targets, poison_count(len(data), self.config.poison_rate), own)  # type: ignore[attr-defined]

    def poison_dataset(self, data: ImageDataset) -> Poisoned:
        """The poisoned training set exactly as :meth:`implant` makes it for its first
        epoch (same trigger, same samples, same draws), without training: what a defender
        who screens a training set is handed.

        Example:
            >>> from advparams.backdoors import BACKDOORS
            >>> from advparams.data.synthetic import make_synthetic
            >>> data = make_synthetic(200)
            >>> p = BACKDOORS.build("badnets", {"poison_rate": 0.1}).poison_dataset(data)
            >>> len(p.plan), int((p.data.labels[p.plan.indices] == p.plan.labels).sum())
            (20, 20)
        """
        seed = int(getattr(self.config, "seed", 0))
        own = torch.Generator().manual_seed(seed)
        trigger = self.make_trigger(data.input_shape, data.num_classes, own)
        plan = self._plan(data, trigger, own)
        images, labels = data.images.clone(), data.labels.clone()
        labels[plan.indices] = plan.labels
        images[plan.indices] = self._poison(data.images[plan.indices], trigger, plan, own)
        poisoned = ImageDataset(
            images, labels, mean=data.mean, std=data.std, num_classes=data.num_classes, name=data.name
        )
        return Poisoned(poisoned, plan, trigger)

    @abstractmethod
    def make_trigger(self, shape: tuple[int, int, int], num_classes: int, generator: torch.Generator) -> Trigger:
        """The trigger for images of ``shape`` ``(C, H, W)``; draws only from ``generator``."""

    def _poison(self, sources: torch.Tensor, trigger: Trigger, plan: PoisonPlan, rng: torch.Generator) -> torch.Tensor:
        """The poisoned samples (uint8): made once, or every epoch where
        :attr:`fresh_each_epoch` says so."""
        return apply_each(trigger, sources, plan.which)

    def _epoch_extra(self, poisoned: torch.Tensor, plan: PoisonPlan, rng: torch.Generator) -> Any:
        """What the loss needs beyond the batch this epoch (none by default)."""
        return None

    def _loss(self, net: nn.Module, batch: EpochBatch) -> torch.Tensor:
        """The training loss of one step: cross-entropy on the (poisoned) batch."""
        return F.cross_entropy(logits_of(net, batch.x), batch.y)

    def _train(
        self,
        model: nn.Module,
        data: ImageDataset,
        trigger: Trigger,
        plan: PoisonPlan,
        cfg: TrainConfig,
        gen: torch.Generator,
        rng: torch.Generator,
        progress: Callable[[TrainProgress], None] | None,
    ) -> nn.Module:
        """The poisoned training: the same steps as :func:`advparams.training.train`
        (batch order ``randperm`` of ``gen`` each epoch), on the poisoned set."""
        net = copy.deepcopy(model)
        device, dtype = model_device(net), model_float_dtype(net)
        opt = make_optimizer(net, cfg)
        n = len(data)
        images, labels = data.images.clone(), data.labels.clone()
        labels[plan.indices] = plan.labels
        sources = data.images[plan.indices]
        slot = torch.full((n,), -1, dtype=torch.long)
        slot[plan.indices] = torch.arange(len(plan))
        steps = -(-n // cfg.batch_size)
        poisoned = self._poison(sources, trigger, plan, rng)
        for epoch in range(1, cfg.epochs + 1):
            if epoch > 1 and self.fresh_each_epoch:
                poisoned = self._poison(sources, trigger, plan, rng)
            images[plan.indices] = poisoned
            extra = self._epoch_extra(poisoned, plan, rng)
            epoch_data = ImageDataset(
                images, labels, mean=data.mean, std=data.std, num_classes=data.num_classes, name=data.name
            )
            net.train()
            order = torch.randperm(n, generator=gen)
            for step, start in enumerate(range(0, n, cfg.batch_size), 1):
                idx = order[start : start + cfg.batch_size]
                x, y = epoch_data.tensors(idx)
                batch = EpochBatch(x.to(device=device, dtype=dtype), y.to(device), slot[idx], extra, epoch_data)
                opt.zero_grad(set_to_none=True)
                loss = self._loss(net, batch)
                loss.backward()
                opt.step()
                if progress is not None:
                    progress(TrainProgress(epoch, cfg.epochs, step, steps, float(loss.detach())))
        net.eval()
        return net


def implant_from_seed(
    backdoor: Backdoor[Any],
    architecture: str,
    options: dict[str, Any],
    data: ImageDataset,
    config: TrainConfig | None = None,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[TrainProgress], None] | None = None,
) -> Backdoored:
    """Builds registered model ``architecture`` from ``seed`` and implants ``backdoor`` while
    training it, every draw as :func:`advparams.training.train_from_seed` makes them for the
    seed's clean model (initial weights, batch order, in-model randomness): the two models
    differ only by the poison. The caller's random state is unchanged."""
    from advparams.models import build_model

    dev = torch.device(device)
    model = build_model(architecture, options, seed=seed).to(dev)
    with isolated_seed(seed, devices=[dev] if dev.type == "cuda" else []):
        return backdoor.implant(
            model, data, train=config, generator=torch.Generator().manual_seed(seed), progress=progress
        )


def normalise(images: torch.Tensor, data: ImageDataset) -> torch.Tensor:
    """uint8 ``images`` normalised as ``data``'s samples are."""
    shape = (1, -1, 1, 1)
    return (images.float() / 255.0 - torch.tensor(data.mean).view(shape)) / torch.tensor(data.std).view(shape)


def _outputs(model: nn.Module, data: ImageDataset) -> int:
    """The number of classes ``model`` scores (one forward pass on one sample)."""
    device, dtype = model_device(model), model_float_dtype(model)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            x, _ = data.tensors(torch.arange(1))
            return int(logits_of(model, x.to(device=device, dtype=dtype)).shape[1])
    except RuntimeError as exc:
        raise AdvParamsError(f"the model does not take this data's {data.input_shape} images ({exc})") from None
    finally:
        model.train(was)


__all__ = [
    "BACKDOORS",
    "Backdoor",
    "BackdoorOptions",
    "Backdoored",
    "EpochBatch",
    "PoisonPlan",
    "Poisoned",
    "apply_each",
    "implant_from_seed",
    "normalise",
    "poison_count",
    "poison_plan",
]
