"""Output relabelling: a locked model that is consistently wrong is not locked.

A lock that drives accuracy *below* chance, or onto a fixed confusion between classes,
still carries the information: an attacker with a few labelled samples learns which
true class each predicted class stands for (a majority vote per predicted class) and
relabels the model's outputs. No weight changes, a handful of forward passes. Only a
lock whose predictions carry no information about the label survives it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advparams.attacks._reoptimise import attacker_batch
from advparams.attacks.base import ATTACKS, Attack, Attacked, require_data
from advparams.data.base import DataLike
from advparams.devices import model_device, model_float_dtype
from advparams.keys.key import Key
from advparams.metrics.accuracy import logits_of, select_logits
from advparams.registry import validated


class Relabelled(nn.Module):
    """``model`` followed by a fixed map from predicted class to reported class.

    The score of reported class ``j`` is the largest score among the predicted classes
    mapped to ``j`` (``-inf`` when none is), so ``argmax`` of the output is
    ``mapping[argmax model(x)]``.
    """

    def __init__(self, model: nn.Module, mapping: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mapping", mapping.clone().long())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = select_logits(self.model(x))
        out = torch.full_like(scores, float("-inf"))
        mapping = self.get_buffer("mapping")
        index = mapping.to(scores.device).expand_as(scores)
        return out.scatter_reduce(1, index, scores, reduce="amax")


def majority_mapping(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """For each predicted class, the true label most often seen with it (itself if never predicted).

    Example:
        >>> majority_mapping(torch.tensor([0, 0, 1, 2]), torch.tensor([1, 1, 0, 2]), 3)
        tensor([1, 0, 2])
    """
    counts = torch.zeros(num_classes, num_classes, dtype=torch.long)
    counts.index_put_((predicted.cpu(), labels.cpu()), torch.ones_like(labels.cpu()), accumulate=True)
    mapping = counts.argmax(1)
    never = counts.sum(1) == 0
    mapping[never] = torch.arange(num_classes)[never]
    return mapping


@dataclass(frozen=True)
@validated
class RelabelConfig:
    """Settings of :class:`Relabel`.

    Attributes:
        num_samples: the attacker's labelled samples (class-balanced).
        seed: seeds the attacker's samples when no generator is passed.
    """

    num_samples: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {self.num_samples}")


@ATTACKS.register("relabel")
class Relabel(Attack[RelabelConfig]):
    """Relabel the outputs by a majority vote per predicted class (no weight changes)."""

    name = "relabel"
    Config = RelabelConfig

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Wraps a copy of ``model`` in the learned output map."""
        import copy

        cfg = self.config
        x, y = attacker_batch(require_data(data, self.name), cfg.num_samples, generator, model_device(model))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                scores = logits_of(model, x.to(model_float_dtype(model)))
        finally:
            model.train(was_training)
        mapping = majority_mapping(scores.argmax(1), y, int(scores.shape[1]))
        info = {
            "mapping": mapping.tolist(),
            "moved_classes": int((mapping != torch.arange(len(mapping))).sum()),
            "num_samples": int(y.shape[0]),
        }
        return Attacked(Relabelled(copy.deepcopy(model), mapping), info=info)
