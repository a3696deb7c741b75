"""The end every parameter scheme shares: the locked copy, its key and the report."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping

import torch
from torch import nn

from advparams.keys.key import Key
from advparams.models import count_parameters
from advparams.schemes.base import LockReport, LockResult
from advparams.schemes.lock_samples import LockCheck

__all__ = ["finish_lock", "lock_report"]


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
        check_tries=check.tries if check is not None else 0,
        certified=certified,
    )
