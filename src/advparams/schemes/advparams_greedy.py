"""The greedy search of :class:`~advparams.schemes.advparams.AdvParams`: one scalar per
gradient and a line search for it, the reconstruction of the paper's search and the
faithful baseline (``search="greedy"``; ``docs/advparams.md``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from advparams.devices import model_device
from advparams.schemes.advparams_search import found_search, holdout_target, move_scores, split_samples, stop_reason
from advparams.schemes.base import LockProgress
from advparams.schemes.locking import LockSetup, Search, tensor_bounds
from advparams.tasks import CLASSIFICATION

if TYPE_CHECKING:
    from advparams.schemes.advparams import AdvParamsConfig

__all__ = ["greedy_search", "line_search"]

log = logging.getLogger(__name__)


def greedy_search(
    cfg: AdvParamsConfig, model: nn.Module, setup: LockSetup, progress: Callable[[LockProgress], None] | None
) -> Search:
    """Greedy adversarial perturbation, one scalar per round."""
    device = model_device(model)
    work, cands, target = setup.work, setup.candidates, setup.target
    samples, held = split_samples(cfg, setup)
    orig_dtypes = {n: p.dtype for n, p in model.named_parameters()}
    share = samples.n / setup.samples.n
    passes = [0.0, 0.0]

    def loss_acc() -> tuple[float, float]:
        passes[0] += share
        return samples.loss_accuracy(work, cfg.objective, cfg.loss_cap)

    bounds = tensor_bounds(cands, cfg.margin)
    chosen = {name: torch.zeros(p.shape, dtype=torch.bool, device=device) for name, p in cands.items()}

    loss, acc = loss_acc()
    acc_before = acc
    changed: list[tuple[str, int]] = []
    rounds, stopped = 0, "target"
    hold_acc: float | None = None
    held_target = holdout_target(cfg.confidence, setup, held, cfg.holdout_rule, cfg.check_level)

    def held_accuracy() -> float:
        if held is None:
            return acc
        passes[0] += held.n / setup.samples.n
        return held.loss_accuracy(work, cfg.objective, cfg.loss_cap)[1]

    while True:
        reason, hold_acc = stop_reason(cfg, acc, (target, held_target), held_accuracy, len(changed), rounds)
        if reason is not None:
            stopped = reason
            break
        rounds += 1
        grads = samples.gradients(work, cands, cfg.objective, cfg.loss_cap)
        passes[0] += share
        passes[1] += share
        best_score, best = 0.0, None
        for name, p in cands.items():
            lo, hi, r = bounds[name]
            score = move_scores(grads[name], p.detach(), lo, hi, cfg.max_steps * cfg.step * r, cfg.selection)
            score = score.masked_fill(chosen[name], 0.0)
            top_score, top_index = score.reshape(-1).max(0)
            if float(top_score) > best_score:
                best_score, best = float(top_score), (name, int(top_index))
        if best is None:
            stopped = "exhausted"
            break
        name, index = best
        chosen[name].view(-1)[index] = True
        gain, new_loss, new_acc = line_search(
            cfg,
            cands[name],
            index,
            float(grads[name].reshape(-1)[index]),
            bounds[name],
            orig_dtypes[name],
            loss,
            loss_acc,
        )
        if gain:
            changed.append((name, index))
            loss, acc = new_loss, new_acc
        if progress is not None:
            progress(LockProgress(rounds, len(changed), cfg.max_params, acc, target, loss, acc_before))
        log.debug("round %d: %s[%d] gain=%s loss=%.4f acc=%.4f", rounds, name, index, gain, loss, acc)

    if held is not None and hold_acc is None:
        passes[0] += held.n / setup.samples.n
        hold_acc = held.loss_accuracy(work, cfg.objective, cfg.loss_cap)[1]
    if held and hold_acc is not None and samples.task is not CLASSIFICATION:
        overall = samples.task.combine([(acc, samples.n), (hold_acc, held.n)], setup.samples.n)
    else:
        overall = (acc * samples.n + hold_acc * held.n) / setup.samples.n if held and hold_acc is not None else acc
    return found_search(changed, acc_before, overall, rounds, stopped, passes, acc, held, hold_acc)


def line_search(
    cfg: AdvParamsConfig,
    param: nn.Parameter,
    index: int,
    grad: float,
    bounds: tuple[float, float, float],
    dtype: torch.dtype,
    loss: float,
    loss_acc: Callable[[], tuple[float, float]],
) -> tuple[bool, float, float]:
    """Iterative sign steps on one scalar while the loss rises (research note §2.2).

    Returns whether the scalar was changed, and the loss and accuracy after.
    """
    lo, hi, r = bounds
    flat = param.data.view(-1)
    v0 = float(flat[index])
    best_v, best_loss, best_acc = v0, loss, -1.0
    direction = 1.0 if grad > 0 else -1.0
    v = v0
    for _ in range(cfg.max_steps):
        v = min(max(v + direction * cfg.step * r, lo), hi)
        # Round to the model's dtype so the search sees exactly the values the locked
        # model will hold. Rounding to nearest cannot leave the original [min, max]:
        # both ends are values of that dtype.
        q = float(torch.tensor(v, dtype=dtype).float())
        if q == best_v:
            break
        flat[index] = q
        new_loss, new_acc = loss_acc()
        if new_loss > best_loss:
            best_v, best_loss, best_acc = q, new_loss, new_acc
        else:
            break
    flat[index] = best_v
    if best_v == v0:
        return False, loss, -1.0
    return True, best_loss, best_acc
