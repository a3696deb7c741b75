"""What a model is for: the task that locks, training, attacks and metrics read.

A task turns a model's output on a batch into scores and targets (:meth:`Task.outputs`),
measures how well the model does as a *level* in ``(0, 1]`` where lower is more useless
(:meth:`Task.tally`, :meth:`Task.level`), says at what level the model counts as useless
(:meth:`Task.default_target`), and how a level measured on ``n`` samples certifies a
target on unseen data (:meth:`Task.certifiable`, :meth:`Task.bound`).

* :data:`CLASSIFICATION`: scores ``[N, C]`` against labels; the level is top-1 accuracy,
  useless at chance (``1 / C``) plus 2 points; certified by the one-sided
  Clopper-Pearson bound. The toolkit's numbers before the task layer are this task's.
* :class:`CausalLM`: next-token prediction on token ids ``[N, L]``; the scores of
  positions ``0..L-2`` against the tokens at ``1..L-1``. Its level is the geometric mean
  probability the model gives the true next token, ``exp(-NLL) = 1 / perplexity`` (so
  a uniform guess over ``V`` tokens is at ``1 / V``, as chance is for a classifier); the
  model is useless at the perplexity of a *unigram* model of the same corpus (one that
  knows only token frequencies), the ``bar_nll`` its data set carries. The level on
  ``n`` sequences is certified by a one-sided normal bound on their mean per-token
  negative log-likelihood [ours] (``docs/language-models.md``).

The data set names its task (its ``task`` attribute, :func:`task_of`); data without one
is classification.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advparams.data.base import DataLike, iter_batches
from advparams.devices import model_device, model_float_dtype
from advparams.errors import AdvParamsError
from advparams.metrics.accuracy import logits_of, model_input, select_logits
from advparams.metrics.binomial import binomial_upper_bound, certifiable_rate

__all__ = [
    "CLASSIFICATION",
    "CausalLM",
    "Classification",
    "Task",
    "answers",
    "perplexity",
    "task_of",
    "task_quality",
]


class Task(ABC):
    """What a model's outputs mean (see the module's text)."""

    name: str = ""
    level_name: str = ""  # what the level is, for messages

    @abstractmethod
    def outputs(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``model``'s scores ``[M, C]`` on batch ``x`` and their targets ``[M]``."""

    def targets(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The targets of batch ``x`` (its labels ``y``), as :meth:`outputs` gives them."""
        return y

    def tally(self, scores: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
        """What a batch adds to the level: ``(sum, count)`` (see :meth:`level`)."""
        return int((scores.argmax(1) == targets).sum()), int(targets.numel())

    def level(self, total: float, count: int) -> float:
        """The level of tallies summing to ``(total, count)``."""
        return total / count if count else 0.0

    def combine(self, parts: Sequence[tuple[float, int]], total: int) -> float:
        """The level over ``total`` samples of sets measured apart: ``[(level, samples)]``."""
        return round(sum(v * k for v, k in parts)) / total if total else 0.0

    def num_classes(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
        """How many scores ``model`` gives per target."""
        with torch.no_grad():
            return int(self.outputs(model, x[:1], y[:1])[0].shape[1])

    @abstractmethod
    def default_target(self, target: float | None, num_classes: int) -> float:
        """The level at which a lock counts as done: ``target`` or the task's own."""

    @abstractmethod
    def chance(self, num_classes: int) -> float:
        """The level of a model that knows nothing of its inputs (uniform guessing)."""

    def certifiable(self, target: float, n: int, confidence: float) -> float:
        """The largest level measured on ``n`` samples that certifies ``target`` at ``confidence``."""
        return certifiable_rate(target, n, confidence)

    def per_sample(self, scores: torch.Tensor, targets: torch.Tensor, samples: int) -> torch.Tensor:
        """Each sample's tally of a batch of ``samples`` (a hit is 1)."""
        return (scores.argmax(1) == targets).view(samples, -1).sum(1).double()

    def bound(self, tallies: torch.Tensor, count: int, confidence: float) -> tuple[float, float]:
        """``(level, upper bound at confidence)`` from per-sample tallies over ``count``
        targets: the one-sided Clopper-Pearson bound on the hit rate."""
        correct = round(float(tallies.sum()))
        return correct / count, binomial_upper_bound(correct, count, confidence)


class Classification(Task):
    """Class scores ``[N, C]`` against labels ``[N]`` (the toolkit's first task)."""

    name = "classification"
    level_name = "accuracy"

    def outputs(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return logits_of(model, x), y

    def default_target(self, target: float | None, num_classes: int) -> float:
        """``target``, or chance level + 2 points."""
        return target if target is not None else 1.0 / num_classes + 0.02

    def chance(self, num_classes: int) -> float:
        return 1.0 / num_classes if num_classes > 0 else 0.0


CLASSIFICATION = Classification()


@dataclass(frozen=True)
class CausalLM(Task):
    """Next-token prediction (see the module's text).

    Attributes:
        bar_nll: the unigram model's cross-entropy on the held-out split, in nats per
            token: a locked model is useless at a perplexity of ``exp(bar_nll)`` or more.
            None where the data does not know it (a lock must then be given a target).
        headroom: the lock's default target is the bar's perplexity times this, on its
            own (training) samples, so that it lands at or above the bar on unseen text
            [ours: on GPT-2 trained on python-stdlib a lock's test perplexity differs from
            its perplexity on the training windows it was checked on by a few to some 20 %
            either way; docs/language-models.md measures it].
    """

    bar_nll: float | None = None
    headroom: float = 1.1

    def __post_init__(self) -> None:
        if not self.headroom >= 1.0:
            raise AdvParamsError(f"headroom must be at least 1, got {self.headroom}")

    name = "causal-lm"
    level_name = "1/perplexity"

    def outputs(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.is_floating_point() or x.dim() != 2 or x.shape[1] < 2:
            raise AdvParamsError(f"a language model reads token ids [N, L] with L >= 2, got {tuple(x.shape)}")
        raw = model(x)
        out = select_logits(raw)
        if isinstance(out, torch.Tensor) and out.dim() == 2:  # read at the last position only (``last-token``)
            out = select_logits(raw, "auto")
        if not isinstance(out, torch.Tensor) or out.dim() != 3 or out.shape[:2] != x.shape:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(raw).__name__
            raise AdvParamsError(f"a language model must return next-token scores [N, L, V]; it returned {shape}")
        return out[:, :-1].reshape(-1, out.shape[-1]), x[:, 1:].reshape(-1)

    def targets(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x[:, 1:].reshape(-1)

    def tally(self, scores: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
        """The log-likelihood of the true tokens and their count."""
        return -float(F.cross_entropy(scores.float(), targets, reduction="sum")), int(targets.numel())

    def level(self, total: float, count: int) -> float:
        """``exp(mean log-likelihood)``: ``1 / perplexity``."""
        return math.exp(total / count) if count else 0.0

    def combine(self, parts: Sequence[tuple[float, int]], total: int) -> float:
        """Sequences hold the same number of tokens: the weighted geometric mean."""
        n = sum(k for _, k in parts)
        return math.exp(sum(math.log(max(v, 1e-300)) * k for v, k in parts) / n) if n else 0.0

    def default_target(self, target: float | None, num_classes: int) -> float:
        """``target`` (a level, ``1 / perplexity``), or the unigram bar's with headroom:
        ``exp(-bar_nll) / headroom``."""
        if target is not None:
            return target
        if self.bar_nll is None:
            raise AdvParamsError("this language-model data set carries no unigram bar: give the lock a target")
        return math.exp(-self.bar_nll) / self.headroom

    def chance(self, num_classes: int) -> float:
        return 1.0 / num_classes if num_classes > 0 else 0.0

    def certifiable(self, target: float, n: int, confidence: float) -> float:
        """``target``: the spread of a sample's log-likelihood is only known once measured."""
        return target

    def per_sample(self, scores: torch.Tensor, targets: torch.Tensor, samples: int) -> torch.Tensor:
        """Log-likelihood of each sequence of a batch of ``samples``."""
        ll = -F.cross_entropy(scores.float(), targets, reduction="none")
        return ll.view(samples, -1).sum(1).double()

    def bound(self, tallies: torch.Tensor, count: int, confidence: float) -> tuple[float, float]:
        """The level and, as its bound, the mean negative log-likelihood per token less
        ``z`` standard errors of the sequences' own means (one-sided, normal) [ours]."""
        per_token = count / max(1, tallies.numel())
        nll = -tallies / per_token
        mean = float(nll.mean())
        sd = float(nll.std()) if nll.numel() > 1 else 0.0
        z = NormalDist().inv_cdf(confidence)
        return math.exp(-mean), math.exp(-(mean - z * sd / math.sqrt(max(1, nll.numel()))))


@torch.no_grad()
def task_quality(model: nn.Module, data: DataLike, *, batch_size: int = 1000) -> dict[str, float]:
    """What ``model`` scores on ``data`` by the data's task (:mod:`advparams.tasks`):
    ``accuracy`` (top-1, of every target), ``level`` (the task's: accuracy, or
    ``1 / perplexity``), ``nll`` (mean cross-entropy, nats per target) and ``perplexity``
    (``exp(nll)``). The model's train/eval mode is restored afterwards."""
    task = task_of(data)
    device, dtype = model_device(model), model_float_dtype(model)
    was_training = model.training
    model.eval()
    hits, nll, total, count = 0, 0.0, 0.0, 0
    try:
        for x, y in iter_batches(data, batch_size):
            out, target = task.outputs(model, model_input(x, device, dtype), y.to(device))
            hits += int((out.argmax(1) == target).sum())
            nll += float(F.cross_entropy(out.float(), target, reduction="sum"))
            got, k = task.tally(out, target)
            total, count = total + got, count + k
    finally:
        model.train(was_training)
    if count == 0:
        raise AdvParamsError("cannot measure a model on an empty data set")
    return {
        "accuracy": hits / count,
        "level": task.level(total, count),
        "nll": nll / count,
        "perplexity": math.exp(min(nll / count, 700.0)),
    }


def perplexity(model: nn.Module, data: DataLike, *, batch_size: int = 1000) -> float:
    """A language model's perplexity on ``data``: ``exp`` of its mean next-token cross-entropy."""
    return task_quality(model, data, batch_size=batch_size)["perplexity"]


def answers(model: nn.Module, x: torch.Tensor, task: Task, *, batch_size: int = 256) -> torch.Tensor:
    """``model``'s top-1 answer to each of the task's targets on inputs ``x`` (int64, on the
    CPU): a classifier's label per input; a language model's next token per position
    (``task.targets`` lines up with it)."""
    device, dtype = model_device(model), model_float_dtype(model)
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                xb = x[start : start + batch_size]
                dummy = torch.zeros(len(xb), dtype=torch.long, device=device)
                scores, _ = task.outputs(model, model_input(xb, device, dtype), dummy)
                out.append(scores.argmax(1).to(torch.int64).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def task_of(data: Any) -> Task:
    """The task ``data`` names (its ``task`` attribute), else classification."""
    task = getattr(data, "task", None)
    return task if isinstance(task, Task) else CLASSIFICATION
