"""The shared machinery of locking: lock samples, the loss a lock raises and its
gradient, candidate tensors, and turning a perturbed work copy into a locked model, its
key and its report. Public, because attacks that know the method (retrace, flip-back)
and benchmarks use the same candidates and samples as the schemes.

Schemes search on a float32 *work copy* of the model; :func:`finish_lock` writes the
chosen values back into a copy of the model in its own dtype, and the key is the bitwise
difference, so the key holds exactly what changed, whatever the scheme did.
"""

from __future__ import annotations

import copy
import fnmatch
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
from advparams.keys.key import Key
from advparams.models import count_parameters
from advparams.schemes.base import LockProgress, LockReport, LockResult, Scheme
from advparams.schemes.lock_samples import LockBatches, LockCheck, certify, check_batches

C = TypeVar("C")


def check_lock_options(config: Any) -> None:
    """Validation every scheme config shares: at least one lock sample and batch
    element, a check set of 0 to 10^6 samples at a level in [0.5, 1), and
    ``include``/``exclude`` as sequences of patterns (a bare string would be read letter
    by letter). Call it from ``__post_init__``."""
    if config.num_samples < 1 or config.batch_size < 1:
        raise ValueError("num_samples and batch_size must be at least 1")
    if not 0 <= getattr(config, "check_samples", 0) <= 1_000_000:
        raise ValueError(f"check_samples must be in [0, 1000000], got {config.check_samples}")
    if not 0.5 <= getattr(config, "check_level", 0.95) < 1.0:
        raise ValueError(f"check_level must be in [0.5, 1), got {config.check_level}")
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


def default_target(target: float | None, num_classes: int) -> float:
    """The lock's stopping accuracy: ``target``, or chance level + 2 points."""
    return target if target is not None else 1.0 / num_classes + 0.02


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

    def certify(self, model: nn.Module) -> LockCheck | None:
        """``model`` measured on the check set (None when there is none)."""
        if self.check is None:
            return None
        return certify(self.check, model, self.target, self.check_level)


def prepare_lock(model: nn.Module, data: DataLike, config: Any, generator: torch.Generator | None) -> LockSetup:
    """The start every scheme shares: the clock, a float32 work copy, its candidate
    tensors (the config's ``include``/``exclude``/``include_1d`` where it has them), the
    lock samples (drawn with ``generator``, or one seeded from ``config.seed``) and the
    stopping target (``config.target_accuracy`` where it has one, else chance + 2), and
    the check set (``config.check_samples`` of the other samples, where it has that)."""
    start = time.perf_counter()
    gen = generator if generator is not None else torch.Generator().manual_seed(config.seed)
    work = float_work_copy(model)
    cands = candidate_parameters(
        work,
        include=getattr(config, "include", ()),
        exclude=getattr(config, "exclude", ()),
        include_1d=getattr(config, "include_1d", False),
    )
    samples = LockBatches(data, config.num_samples, config.batch_size, gen, model_device(model))
    num_classes = samples.num_classes(work)
    target = default_target(getattr(config, "target_accuracy", None), num_classes)
    wanted = int(getattr(config, "check_samples", 0))
    check = check_batches(data, samples, wanted, gen, model_device(model)) if wanted else None
    level = float(getattr(config, "check_level", 0.95))
    return LockSetup(start, work, cands, samples, target, gen, num_classes, check, level, wanted > 0)


def tensor_bounds(params: Mapping[str, torch.Tensor], margin: float) -> dict[str, tuple[float, float, float]]:
    """Per tensor ``(lo, hi, range)``: its original ``[min, max]`` shrunk by ``margin * range``."""
    out = {}
    for name, p in params.items():
        lo, hi = float(p.min()), float(p.max())
        r = hi - lo
        out[name] = (lo + margin * r, hi - margin * r, r)
    return out


def finish_lock(
    scheme: str,
    config: Mapping[str, object],
    model: nn.Module,
    work: nn.Module,
    positions: Mapping[str, torch.Tensor],
    *,
    start: float,
    accuracy_before: float,
    accuracy_after: float,
    target: float,
    num_samples: int,
    rounds: int,
    stopped: str,
    extra_info: Mapping[str, object] | None = None,
    passes: tuple[float, float] = (0.0, 0.0),
    search_accuracy: float | None = None,
    holdout: int = 0,
    holdout_accuracy: float | None = None,
    check: LockCheck | None = None,
    check_asked: bool = False,
) -> LockResult:
    """Writes the values of ``work`` at ``positions`` into a copy of ``model`` and keys it.

    Args:
        scheme: registry name of the scheme.
        config: the scheme's configuration as a dict (stored in the key).
        model: the original model (not changed).
        work: the float32 work copy holding the locked values.
        positions: tensor name -> flat indices to copy from ``work``.
        start: ``time.perf_counter()`` when the lock began.
        accuracy_before: accuracy on the lock samples before the lock.
        accuracy_after: accuracy on the lock samples after it (of the work copy).
        target: the stopping target.
        num_samples: number of lock samples.
        rounds: gradient evaluations made.
        stopped: why the search stopped.
        extra_info: more JSON-ready facts for the key's ``info``.
        passes: forward and backward passes spent, in passes over all lock samples.
        search_accuracy: accuracy on the samples searched on, where some were held out.
        holdout: lock samples held out for the stop rule.
        holdout_accuracy: accuracy on them.
        check: the locked model measured on the check set (None: no check).
        check_asked: a check was asked for (without ``check``: the data held no samples for it).

    Values are rounded to each tensor's own dtype; a value that rounds back to the
    original is not a change and is not in the key.
    """
    locked = copy.deepcopy(model)
    work_params = dict(work.named_parameters())
    locked_params = dict(locked.named_parameters())
    with torch.no_grad():
        for name, idx in positions.items():
            if idx.numel() == 0:
                continue
            target_p = locked_params[name]
            flat = target_p.detach().reshape(-1).clone()
            idx = idx.to(flat.device)
            flat[idx] = (
                work_params[name]
                .detach()
                .reshape(-1)[idx.to(work_params[name].device)]
                .to(device=flat.device, dtype=flat.dtype)
            )
            target_p.copy_(flat.view_as(target_p))
    total = count_parameters(model)
    info: dict[str, object] = {
        "params_total": total,
        "lock_accuracy_before": accuracy_before,
        "lock_accuracy_after": accuracy_after,
        "num_samples": num_samples,
    }
    info.update(extra_info or {})
    key = Key.from_models(model, locked, scheme=scheme, config=dict(config), info=info)
    report = lock_report(
        scheme,
        key,
        total,
        start=start,
        accuracy_before=accuracy_before,
        accuracy_after=accuracy_after,
        target=target,
        num_samples=num_samples,
        rounds=rounds,
        stopped=stopped,
        passes=passes,
        search_accuracy=search_accuracy,
        holdout=holdout,
        holdout_accuracy=holdout_accuracy,
        check=check,
        check_asked=check_asked,
    )
    return LockResult(locked, key, report)


def lock_report(
    scheme: str,
    key: Key,
    params_total: int,
    *,
    start: float,
    accuracy_before: float,
    accuracy_after: float,
    target: float,
    num_samples: int,
    rounds: int,
    stopped: str,
    passes: tuple[float, float] = (0.0, 0.0),
    search_accuracy: float | None = None,
    holdout: int = 0,
    holdout_accuracy: float | None = None,
    check: LockCheck | None = None,
    check_asked: bool = False,
) -> LockReport:
    """The :class:`LockReport` of a finished lock; sizes come from ``key``, the time from ``start``."""
    certified = check.certified if check is not None else (False if check_asked else None)
    return LockReport(
        scheme=scheme,
        params_changed=key.num_changed,
        params_total=params_total,
        proportion_percent=100.0 * key.num_changed / params_total,
        lock_accuracy_before=accuracy_before,
        lock_accuracy_after=accuracy_after,
        target_accuracy=target,
        num_samples=num_samples,
        rounds=rounds,
        stopped=stopped,
        seconds=time.perf_counter() - start,
        changed_per_tensor=key.counts(),
        target_met=accuracy_after <= target
        and (holdout_accuracy is None or holdout_accuracy <= target)
        and certified is not False,
        forward_passes=passes[0],
        backward_passes=passes[1],
        search_accuracy_after=search_accuracy,
        holdout_accuracy_after=holdout_accuracy,
        holdout_samples=holdout,
        check_samples=check.samples if check is not None else 0,
        check_accuracy=check.accuracy if check is not None else None,
        check_bound=check.bound if check is not None else None,
        check_level=check.level if check is not None else None,
        certified=certified,
    )


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
        found = self.search(model, setup, progress)
        checked = setup.certify(setup.work)  # the work copy holds the locked values, rounded to the model's dtype
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
            passes=found.passes,
            search_accuracy=found.search_accuracy,
            holdout=found.holdout,
            holdout_accuracy=found.holdout_accuracy,
            check=checked,
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
