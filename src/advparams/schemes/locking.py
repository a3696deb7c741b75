"""The shared machinery of locking: lock samples, the loss a lock raises and its
gradient, candidate tensors, and turning a perturbed work copy into a locked model, its
key and its report. Public, because attacks that know the method (retrace, flip-back)
and benchmarks use the same candidates and samples as the schemes.

Schemes search on a float32 *work copy* of the model; :func:`finish_lock` (in
``lock_finish``) writes the chosen values back into a copy of the model in its own
dtype, and the key is the bitwise difference, so the key holds exactly what changed,
whatever the scheme did.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import logging
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from advparams.data.base import DataLike
from advparams.devices import model_device
from advparams.errors import AdvParamsError, ConfigError
from advparams.schemes.base import LockProgress, LockResult, Scheme
from advparams.schemes.lock_finish import finish_lock
from advparams.schemes.lock_samples import LockBatches, LockCheck, certify, check_batches
from advparams.tasks import CLASSIFICATION, Task

C = TypeVar("C")


log = logging.getLogger(__name__)

# after a failed check, the held-out threshold drops by the check's excess over what it
# could have certified and this much more [ours]
RETRY_EXTRA = 0.005
# the share of 1 - check_level the first check spends when there are retries [ours]
FIRST_SHARE = 0.8


def check_lock_options(config: Any) -> None:
    """Validation every scheme config shares: at least one lock sample and batch
    element, a check set of 0 to 10^6 samples at a level in [0.5, 1), 1 to 10 tries, and
    ``include``/``exclude`` as sequences of patterns (a bare string would be read letter
    by letter). Call it from ``__post_init__``."""
    if config.num_samples < 1 or config.batch_size < 1:
        raise ValueError("num_samples and batch_size must be at least 1")
    if not 0 <= getattr(config, "check_samples", 0) <= 1_000_000:
        raise ValueError(f"check_samples must be in [0, 1000000], got {config.check_samples}")
    if not 0.5 <= getattr(config, "check_level", 0.95) < 1.0:
        raise ValueError(f"check_level must be in [0.5, 1), got {config.check_level}")
    if not 1 <= getattr(config, "check_tries", 1) <= 10:
        raise ValueError(f"check_tries must be in [1, 10], got {config.check_tries}")
    if isinstance(getattr(config, "include", ()), str) or isinstance(getattr(config, "exclude", ()), str):
        raise ValueError("include and exclude are sequences of patterns, not strings")


def candidate_parameters(
    model: nn.Module,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    include_1d: bool = False,
) -> dict[str, nn.Parameter]:
    """Floating-point parameters a scheme may perturb, by name.

    Weight tensors (``dim >= 2``) always; 1-d tensors (biases, normalisation affine
    parameters) only with ``include_1d``; filtered by ``fnmatch`` patterns. Buffers such
    as BatchNorm statistics are never candidates.
    """
    out = {}
    for name, p in model.named_parameters():
        if not p.is_floating_point() or p.numel() < 2:
            continue
        if p.dim() < 2 and not include_1d:
            continue
        if include and not any(fnmatch.fnmatchcase(name, pat) for pat in include):
            continue
        if any(fnmatch.fnmatchcase(name, pat) for pat in exclude):
            continue
        out[name] = p
    if not out:
        raise ConfigError("no parameter matches the candidate settings (include/exclude/include_1d)")
    return out


def float_work_copy(model: nn.Module) -> nn.Module:
    """A float32 copy of ``model`` in eval mode with gradients off, on the same device."""
    work = copy.deepcopy(model).float().eval()
    for p in work.parameters():
        p.requires_grad_(False)
    return work


def default_target(target: float | None, num_classes: int, task: Task = CLASSIFICATION) -> float:
    """The lock's stopping accuracy: ``target``, or the task's own (a classifier's:
    chance level + 2 points; a language model's: the unigram bar)."""
    return task.default_target(target, num_classes)


@dataclass
class LockSetup:
    """What every scheme starts from (see :func:`prepare_lock`)."""

    start: float
    work: nn.Module
    candidates: dict[str, nn.Parameter]
    samples: LockBatches
    target: float
    generator: torch.Generator  # the one the samples were drawn with, for any later draws
    num_classes: int = 0  # class scores the model returns (0: not known)
    check: LockBatches | None = None  # the check set: never shown to the search
    check_level: float = 0.95
    check_asked: bool = False  # the config asks for a check (check_samples > 0)
    shift: float = 0.0  # how far below its rule the held-out threshold is set (retries after a failed check)
    tries: int = 1  # checks the lock may make, each at a share of 1 - check_level

    attempt: int = 1  # which of them this setup makes

    @property
    def try_level(self) -> float:
        """The confidence of this setup's check: with one try, ``check_level``; else the
        first spends ``FIRST_SHARE`` of ``1 - check_level`` and the others share the
        rest, so that a lock certified on any of them is above its target with
        probability at most ``1 - check_level`` (union bound) [ours]."""
        alpha = 1.0 - self.check_level
        if self.tries == 1:
            return self.check_level
        if self.attempt == 1:
            return 1.0 - FIRST_SHARE * alpha
        return 1.0 - (1.0 - FIRST_SHARE) * alpha / (self.tries - 1)

    def certify(self, model: nn.Module) -> LockCheck | None:
        """``model`` measured on the check set (None when there is none)."""
        if self.check is None:
            return None
        return certify(self.check, model, self.target, self.try_level)

    def retry(self, model: nn.Module, config: Any, checked: LockCheck) -> LockSetup:
        """The next try after ``checked`` failed: the same samples, check set and target
        on a fresh work copy of ``model``, the held-out threshold lowered further by the
        check's excess over what the next check can certify, and ``RETRY_EXTRA``."""
        work, cands = work_candidates(model, config)
        out = dataclasses.replace(self, work=work, candidates=cands, attempt=self.attempt + 1)
        excess = checked.accuracy - self.samples.task.certifiable(self.target, checked.samples, out.try_level)
        return dataclasses.replace(out, shift=self.shift + max(excess, 0.0) + RETRY_EXTRA)


def work_candidates(model: nn.Module, config: Any) -> tuple[nn.Module, dict[str, nn.Parameter]]:
    """A float32 work copy of ``model`` and its candidate tensors (the config's
    ``include``/``exclude``/``include_1d`` where it has them)."""
    work = float_work_copy(model)
    cands = candidate_parameters(
        work,
        include=getattr(config, "include", ()),
        exclude=getattr(config, "exclude", ()),
        include_1d=getattr(config, "include_1d", False),
    )
    return work, cands


def prepare_lock(model: nn.Module, data: DataLike, config: Any, generator: torch.Generator | None) -> LockSetup:
    """The start every scheme shares: the clock, a float32 work copy, its candidate
    tensors (the config's ``include``/``exclude``/``include_1d`` where it has them), the
    lock samples (drawn with ``generator``, or one seeded from ``config.seed``) and the
    stopping target (``config.target_accuracy`` where it has one, else chance + 2), and
    the check set (``config.check_samples`` of the other samples, where it has that)."""
    start = time.perf_counter()
    gen = generator if generator is not None else torch.Generator().manual_seed(config.seed)
    work, cands = work_candidates(model, config)
    samples = LockBatches(data, config.num_samples, config.batch_size, gen, model_device(model))
    num_classes = samples.num_classes(work)
    target = default_target(getattr(config, "target_accuracy", None), num_classes, samples.task)
    wanted = int(getattr(config, "check_samples", 0))
    check = check_batches(data, samples, wanted, gen, model_device(model)) if wanted else None
    level = float(getattr(config, "check_level", 0.95))
    setup = LockSetup(start, work, cands, samples, target, gen, num_classes, check, level, wanted > 0)
    tries = int(getattr(config, "check_tries", 1))
    if check is None or tries == 1:
        return setup
    # more tries only where a later check, at its smaller share of the level, can still
    # certify a model at chance: on a small check set it could not, so a second search
    # would only spend the first check's share (decided from sizes alone, before any check)
    later = dataclasses.replace(setup, tries=tries, attempt=2).try_level
    chance = samples.task.chance(num_classes)
    return dataclasses.replace(setup, tries=tries if samples.task.certifiable(target, check.n, later) >= chance else 1)


def tensor_bounds(params: Mapping[str, torch.Tensor], margin: float) -> dict[str, tuple[float, float, float]]:
    """Per tensor ``(lo, hi, range)``: its original ``[min, max]`` shrunk by ``margin * range``."""
    out = {}
    for name, p in params.items():
        lo, hi = float(p.min()), float(p.max())
        r = hi - lo
        out[name] = (lo + margin * r, hi - margin * r, r)
    return out


@dataclass
class Search:
    """What a parameter scheme's search found (see :class:`ParameterScheme`).

    Attributes:
        positions: tensor name -> flat indices whose work-copy values make the lock.
        accuracy_before: accuracy on the lock samples before.
        accuracy_after: accuracy on the lock samples after.
        rounds: gradient evaluations made.
        stopped: why the search stopped.
        exact: every position is a real change, so the key must hold exactly as many
            entries (checked; False where a value may round back to the original).
        passes: forward and backward passes spent, in passes over all lock samples.
        search_accuracy: accuracy on the samples the gradients were computed on, where
            some were held out (``accuracy_after`` is over all lock samples).
        holdout: lock samples held out for the stop rule.
        holdout_accuracy: accuracy on them.
    """

    positions: Mapping[str, torch.Tensor]
    accuracy_before: float
    accuracy_after: float
    rounds: int
    stopped: str
    exact: bool = False
    passes: tuple[float, float] = (0.0, 0.0)
    search_accuracy: float | None = None
    holdout: int = 0
    holdout_accuracy: float | None = None


class ParameterScheme(Scheme[C]):
    """A scheme that perturbs parameter values of a float32 work copy.

    :meth:`lock` does what all of them share (:func:`prepare_lock`, then
    :func:`finish_lock`); subclasses implement :meth:`search`, which changes
    ``setup.work`` in place and says where.
    """

    def lock(
        self,
        model: nn.Module,
        data: DataLike,
        *,
        generator: torch.Generator | None = None,
        progress: Callable[[LockProgress], None] | None = None,
    ) -> LockResult:
        """Locks a copy of ``model`` (see :meth:`Scheme.lock`)."""
        setup = prepare_lock(model, data, self.config, generator)
        spent = (0.0, 0.0)  # every search's passes
        for attempt in range(1, setup.tries + 1):
            found = self.search(model, setup, progress)
            spent = (spent[0] + found.passes[0], spent[1] + found.passes[1])
            checked = setup.certify(setup.work)  # the work copy holds the locked values, rounded to the model's dtype
            if checked is None or checked.certified or found.stopped != "target" or attempt == setup.tries:
                break
            # the held-out samples read lower than unseen data: search again from the
            # original, their threshold lowered by how far the check was from certifying
            log.info("check %d of %d not certified (%.4f); searching again", attempt, setup.tries, checked.accuracy)
            setup = setup.retry(model, self.config, checked)
        result = finish_lock(
            self.name,
            self.config_dict(),
            model,
            setup.work,
            found.positions,
            start=setup.start,
            accuracy_before=found.accuracy_before,
            accuracy_after=found.accuracy_after,
            target=setup.target,
            num_samples=setup.samples.n,
            rounds=found.rounds,
            stopped=found.stopped,
            passes=spent,
            search_accuracy=found.search_accuracy,
            holdout=found.holdout,
            holdout_accuracy=found.holdout_accuracy,
            check=checked if checked is None else dataclasses.replace(checked, tries=attempt),
            check_asked=setup.check_asked,
        )
        expected = sum(int(i.numel()) for i in found.positions.values())
        if found.exact and result.key.num_changed != expected:
            raise AdvParamsError(
                f"internal error: {expected} values changed but the key holds {result.key.num_changed}"
            )
        return result

    @abstractmethod
    def search(self, model: nn.Module, setup: LockSetup, progress: Callable[[LockProgress], None] | None) -> Search:
        """Perturbs ``setup.work`` in place; ``model`` is the untouched original."""
