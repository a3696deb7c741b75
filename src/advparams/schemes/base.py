"""The active-protection family: a scheme locks a model and a key unlocks it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from advparams.data.base import DataLike
from advparams.keys.key import Key, unlock
from advparams.registry import Configurable, Registry

C = TypeVar("C")

SCHEMES: Registry[Any] = Registry("scheme")


@dataclass(frozen=True)
class LockReport:
    """What a lock did, in numbers (JSON-ready via ``dataclasses.asdict``).

    Attributes:
        scheme: registry name of the scheme.
        params_changed: scalar values changed (the key's size in entries).
        params_total: scalar parameters of the model.
        proportion_percent: ``100 * params_changed / params_total``.
        lock_accuracy_before: accuracy on the lock samples before locking.
        lock_accuracy_after: accuracy on the lock samples after locking.
        target_accuracy: the stopping target on the lock samples.
        num_samples: number of lock samples.
        rounds: gradient evaluations made.
        stopped: why it stopped: ``"target"`` (reached), ``"budget"`` (the most values
            it may change were changed), ``"exhausted"`` (no value left that raises the
            loss), ``"rounds"`` (round limit), ``"iterations"`` (NNSplitter's limit) or
            ``"shuffled"`` (the hardened lock's one shuffle).
        seconds: wall-clock time of the lock.
        changed_per_tensor: values changed in each tensor.
        target_met: ``lock_accuracy_after <= target_accuracy``, the held-out share at its
            own target where there is one, and ``certified`` not False.
        forward_passes: forward computation spent, in passes over all the lock samples
            (a forward over a quarter of them counts 0.25), by every search the lock made
            (not the check's one forward pass over the check samples).
        backward_passes: backward computation spent, likewise.
        search_accuracy_after: accuracy on the samples the search computed its
            gradients on, where a share was held out; None where nothing was.
        holdout_accuracy_after: accuracy on the held-out share of the lock samples,
            which the stop rule requires at the target too; None where nothing was.
        holdout_samples: lock samples held out for the stop rule (0: none).
        check_samples: samples of the check set, drawn from the data apart from the lock
            samples and never seen by the search (0: none).
        check_accuracy: the locked model's accuracy on them; None without a check.
        check_bound: the one-sided Clopper-Pearson upper bound on the locked model's
            accuracy on unseen data at ``check_level``; None without a check.
        check_level: the confidence of that bound: the scheme's ``check_level`` with
            one try; with more, each check's share of it, so that a lock certified on
            any try holds its target with the scheme's ``check_level`` (union bound).
        check_tries: checks made: a lock whose check fails searches again with a lower
            held-out threshold, up to the scheme's ``check_tries`` (0: no check).
        certified: True when ``check_bound <= target_accuracy``: the target holds on
            unseen data (from the data's distribution) with probability ``check_level``;
            False when it is above, or when a check was asked for and the data held no
            samples for it; None when no check was asked for (``check_samples=0``, or a
            scheme without one). ``target_met`` requires it not to be False.
    """

    scheme: str
    params_changed: int
    params_total: int
    proportion_percent: float
    lock_accuracy_before: float
    lock_accuracy_after: float
    target_accuracy: float
    num_samples: int
    rounds: int
    stopped: str
    seconds: float
    changed_per_tensor: dict[str, int] = field(default_factory=dict)
    target_met: bool = False
    forward_passes: float = 0.0
    backward_passes: float = 0.0
    search_accuracy_after: float | None = None
    holdout_accuracy_after: float | None = None
    holdout_samples: int = 0
    check_samples: int = 0
    check_accuracy: float | None = None
    check_bound: float | None = None
    check_level: float | None = None
    check_tries: int = 0
    certified: bool | None = None

    def problem(self, level: str = "accuracy") -> str | None:
        """What is wrong with this lock, as one sentence, or None: nothing to lock (the
        model was at or below the target before), or the target missed. ``level``: the
        task's level (:attr:`advparams.tasks.Task.level_name`); a language model's
        (``"1/perplexity"``) is told as perplexity."""
        before, after, target = self.lock_accuracy_before, self.lock_accuracy_after, self.target_accuracy
        lm = level == "1/perplexity"

        def q(v: float) -> str:  # a level as the task says it
            return f"perplexity {1 / v:.2f}" if lm and v > 0 else f"{100 * v:.2f} %"

        what, at_or, beyond = ("perplexity", "at or above", "below") if lm else ("accuracy", "at or below", "above")
        if before <= target:
            return (
                f"nothing to lock: the model's {what} on the lock samples is already {q(before)}, "
                f"{at_or} the target {q(target)} (is it trained, and for this data set?)"
            )
        if self.certified is False and after <= target:
            if not self.check_samples:
                return (
                    "the lock's target could not be checked on unseen data: the data holds no samples beyond "
                    f"the {self.num_samples} lock samples (lower --set num_samples, give more data, or skip the "
                    "check with --set check_samples=0)"
                )
            assert self.check_accuracy is not None and self.check_bound is not None
            bound = "lower" if lm else "upper"
            return (
                f"the lock's target is not certified on unseen data: {q(self.check_accuracy)} on "
                f"{self.check_samples} check samples the search never saw, whose "
                f"{100 * (self.check_level or 0):.4g} % {bound} bound {q(self.check_bound)} is {beyond} the "
                f"target {q(target)} (stopped: {self.stopped} after {self.params_changed} changed values, "
                f"{self.check_tries} search{'es' if self.check_tries > 1 else ''})"
            )
        if not self.target_met:
            return (
                f"the lock missed its target: {q(after)} on the lock samples, target {q(target)} "
                f"(stopped: {self.stopped} after {self.params_changed} changed values)"
            )
        return None


@dataclass
class LockResult:
    """A locked copy of the model, the key that unlocks it, and the report."""

    model: nn.Module
    key: Key
    report: LockReport


@dataclass(frozen=True)
class LockProgress:
    """Passed to the progress callback after every round of a lock."""

    round: int
    params_changed: int
    max_params: int
    lock_accuracy: float
    target_accuracy: float
    loss: float
    start_accuracy: float | None = None
    """Accuracy on the lock samples before the lock (None where a scheme does not say)."""


class Scheme(Configurable[C], ABC):
    """Base class of active-protection schemes.

    The constructor takes the configuration only (no model, no data), so a scheme can be
    built from a name and a dict, printed and compared; :meth:`lock` takes the per-run
    values. Every scheme's key is a :class:`~advparams.keys.Key`, so :meth:`unlock` is
    shared and bit-exact.

    Attributes:
        aims_at_target: True when the scheme searches until the lock samples' accuracy
            reaches its target; False for one-shot baselines (random, SFGE), whose
            locked accuracy is whatever their fixed budget gives.
        budget_option: the configuration field that sets how many values the scheme
            changes (swept by the evaluation harness for the accuracy-against-size
            curve); None where its size is not such a count (the harness skips it).
    """

    aims_at_target: ClassVar[bool] = True
    budget_option: ClassVar[str | None] = "max_params"

    @abstractmethod
    def lock(
        self,
        model: nn.Module,
        data: DataLike,
        *,
        generator: torch.Generator | None = None,
        progress: Callable[[LockProgress], None] | None = None,
    ) -> LockResult:
        """Returns a locked copy of ``model`` and its key; ``model`` is not changed.

        Args:
            model: a trained classifier returning ``[N, C]`` scores; it runs where it is
                (CPU or CUDA).
            data: labelled clean data to draw the lock samples from (a ``Dataset`` of
                ``(x, y)`` or a pair of tensors).
            generator: randomness for drawing the lock samples; default: seeded from the
                configuration's ``seed``.
            progress: called after every round.
        """

    def unlock(self, model: nn.Module, key: Key) -> nn.Module:
        """Restores the original from a locked model (bit-exact); ``model`` is not changed."""
        return unlock(model, key)
