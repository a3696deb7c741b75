"""Lock samples and the loss a lock raises on them: the class-balanced samples every
parameter-perturbing scheme searches on (:class:`LockBatches`), their loss, accuracy and
gradients, and :func:`lock_objective`. Public, because attacks that know the method and
benchmarks draw the same samples as the schemes (:mod:`advparams.schemes.locking`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advparams.data.base import DataLike, all_labels, balanced_indices, gather
from advparams.metrics.accuracy import model_input
from advparams.tasks import CLASSIFICATION, Task, task_of

__all__ = ["LockBatches", "LockCheck", "certify", "check_batches", "lock_objective"]


def lock_objective(logits: torch.Tensor, labels: torch.Tensor, objective: str, cap: float) -> torch.Tensor:
    """Sum over samples of the loss a lock raises: cross-entropy, each term capped at
    ``cap`` when ``objective == "capped-ce"``."""
    per_sample = F.cross_entropy(logits, labels, reduction="none")
    if objective == "capped-ce":
        per_sample = per_sample.clamp(max=cap)
    return per_sample.sum()


class LockBatches:
    """The lock samples, drawn class-balanced, held on the model's device in batches,
    and the task their data names (:func:`advparams.tasks.task_of`): what a model's
    "accuracy" on them is (for a language model, ``1 / perplexity``).

    Args:
        data: labelled clean data.
        num_samples: how many samples to draw (all of them if the data is smaller).
        batch_size: samples per forward pass.
        generator: randomness of the draw.
        device: where the batches live.
    """

    task: Task = CLASSIFICATION

    def __init__(
        self,
        data: DataLike,
        num_samples: int,
        batch_size: int,
        generator: torch.Generator,
        device: torch.device,
    ) -> None:
        idx = balanced_indices(all_labels(data), num_samples, generator)
        self.task: Task = task_of(data)
        self._take(data, idx, batch_size, device)

    def _take(self, data: DataLike, idx: torch.Tensor, batch_size: int, device: torch.device) -> None:
        x, y = gather(data, idx)
        self.indices = idx
        self._set(model_input(x, device, torch.float32), y.to(device), batch_size)

    def _set(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size
        self.batches = [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(y), batch_size)]
        self.n = len(y)

    def part(self, start: int, stop: int) -> LockBatches:
        """Samples ``start:stop`` as a set of their own (the draw is class-balanced in
        round-robin order, so a contiguous part is balanced too)."""
        out = LockBatches.__new__(LockBatches)
        out.task = self.task
        out.indices = self.indices[start:stop]
        out._set(self.x[start:stop], self.y[start:stop], self.batch_size)
        return out

    def num_classes(self, model: nn.Module) -> int:
        """Number of class scores ``model`` returns."""
        xb, yb = self.batches[0]
        return self.task.num_classes(model, xb, yb)

    def loss_accuracy(self, model: nn.Module, objective: str = "ce", cap: float = 4.6) -> tuple[float, float]:
        """Mean lock objective and accuracy (the task's level) of ``model`` on the lock samples."""
        loss, total, count = 0.0, 0.0, 0
        with torch.no_grad():
            for xb, yb in self.batches:
                out, target = self.task.outputs(model, xb, yb)
                loss += float(lock_objective(out, target, objective, cap))
                got, k = self.task.tally(out, target)
                total, count = total + got, count + k
        return loss / self.n, self.task.level(total, count)

    def loss_accuracy_predictions(self, model: nn.Module) -> tuple[float, float, torch.Tensor]:
        """Mean cross-entropy, accuracy (the task's level) and predicted labels (of every
        target: :meth:`targets`) of ``model`` on the lock samples."""
        loss, preds, total, count = 0.0, [], 0.0, 0
        with torch.no_grad():
            for xb, yb in self.batches:
                out, target = self.task.outputs(model, xb, yb)
                loss += float(lock_objective(out, target, "ce", 0.0))
                preds.append(out.argmax(1))
                got, k = self.task.tally(out, target)
                total, count = total + got, count + k
        pred = torch.cat(preds)
        if self.task is CLASSIFICATION:
            return loss / self.n, float((pred == self.y).float().mean()), pred
        return loss / self.n, self.task.level(total, count), pred

    def targets(self) -> torch.Tensor:
        """What the scores of the lock samples are measured against: the labels, or
        for a language model each next token."""
        if self.task is CLASSIFICATION:
            return self.y
        return torch.cat([self.task.targets(xb, yb) for xb, yb in self.batches])

    def gradients(
        self, model: nn.Module, params: Mapping[str, nn.Parameter], objective: str = "ce", cap: float = 4.6
    ) -> dict[str, torch.Tensor]:
        """Gradient of the mean lock objective with respect to each of ``params``.

        Gradients are switched on for ``params`` only for this call.
        """
        for p in params.values():
            p.requires_grad_(True)
            p.grad = None
        try:
            for xb, yb in self.batches:
                (lock_objective(*self.task.outputs(model, xb, yb), objective, cap) / self.n).backward()
            return {
                name: p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
                for name, p in params.items()
            }
        finally:
            for p in params.values():
                p.requires_grad_(False)
                p.grad = None


def check_batches(
    data: DataLike, lock: LockBatches, num_samples: int, generator: torch.Generator, device: torch.device
) -> LockBatches | None:
    """The check set: up to ``num_samples`` samples of ``data`` drawn class-balanced from
    those that are not lock samples; None when there are none.

    The draw uses a generator seeded from ``generator``'s next number without advancing
    ``generator`` itself, so a scheme that draws from it later draws as before."""
    labels = all_labels(data)
    free = torch.ones(len(labels), dtype=torch.bool)
    free[lock.indices.cpu()] = False
    rest = torch.nonzero(free).squeeze(1)
    if num_samples < 1 or rest.numel() == 0:
        return None
    fork = torch.Generator()
    fork.set_state(generator.get_state())
    own = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=fork)))
    out = LockBatches.__new__(LockBatches)
    out.task = lock.task
    out._take(data, rest[balanced_indices(labels[rest], num_samples, own)], lock.batch_size, device)
    return out


@dataclass(frozen=True)
class LockCheck:
    """A locked model's accuracy (the task's level) on the check set and what it certifies.

    Attributes:
        samples: check samples.
        correct: how many of them the locked model answers right (a classifier).
        bound: upper bound on its accuracy at ``level`` (one-sided Clopper-Pearson for a
            classifier; :meth:`advparams.tasks.Task.bound`).
        level: the bound's confidence.
        certified: ``bound <= target``.
        tries: the checks the lock made, this the last (each at ``level``).
        value: the level measured, where it is not ``correct / samples`` (a language
            model's ``1 / perplexity``).
    """

    samples: int
    correct: int
    bound: float
    level: float
    certified: bool
    tries: int = 1
    value: float | None = None

    @property
    def accuracy(self) -> float:
        return self.value if self.value is not None else self.correct / self.samples


def certify(check: LockBatches, model: nn.Module, target: float, level: float) -> LockCheck:
    """Measures ``model`` on the check set: its target holds on unseen data with
    probability ``level`` when the upper bound on its accuracy is at most ``target``.
    The check set must not have steered the model (nothing the search saw)."""
    task, tallies, count = check.task, [], 0
    with torch.no_grad():
        for xb, yb in check.batches:
            out, target_b = task.outputs(model, xb, yb)
            tallies.append(task.per_sample(out, target_b, len(xb)))
            count += int(target_b.numel())
    value, bound = task.bound(torch.cat(tallies), count, level)
    if task is CLASSIFICATION:
        return LockCheck(check.n, round(value * count), bound, level, bound <= target)
    return LockCheck(check.n, 0, bound, level, bound <= target, value=value)
