"""Undoing what a batched AdvParams search changed but the lock does not need: the
bisection over a ranking of the changes, and the one-by-one pass after it [ours]."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from advparams.schemes.lock_samples import LockBatches

if TYPE_CHECKING:
    from advparams.schemes.advparams import AdvParamsConfig

__all__ = ["drop_each", "trim_round"]


def trim_round(
    cfg: AdvParamsConfig,
    work: nn.Module,
    last: list[tuple[str, int, float, float]],
    cands: dict[str, nn.Parameter],
    batch: LockBatches,
    held: LockBatches | None,
    targets: tuple[float, float],
    passes: list[float],
    n: int,
) -> tuple[int, float, float | None]:
    """Bisects for the fewest of the last round's changes (a prefix, by score) that meet
    the stop rule; returns how many are kept and the batch's and held-out accuracy."""

    def set_prefix(m: int) -> None:
        with torch.no_grad():
            for i, (name, index, old, new) in enumerate(last):
                cands[name].data.view(-1)[index] = new if i < m else old

    def check() -> tuple[bool, float, float | None]:
        return _rule_holds(cfg, work, batch, held, targets, passes, n)

    lo, hi = 0, len(last)  # the state before the round failed the rule, all of it passed
    best: tuple[float, float | None] | None = None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        set_prefix(mid)
        ok, acc, h = check()
        if ok:
            hi, best = mid, (acc, h)
        else:
            lo = mid
    set_prefix(hi)
    if best is None:  # nothing removed: measure the full round's state again
        _, acc, h = check()
        best = (acc, h)
    return hi, best[0], best[1]


def _rule_holds(
    cfg: AdvParamsConfig,
    work: nn.Module,
    batch: LockBatches,
    held: LockBatches | None,
    targets: tuple[float, float],
    passes: list[float],
    n: int,
) -> tuple[bool, float, float | None]:
    """Whether the stop rule holds now: the batch's accuracy at the target and the
    held-out samples' at theirs; with both accuracies (the held-out one only if measured)."""
    target, held_target = targets
    passes[0] += batch.n / n
    acc = batch.loss_accuracy(work, cfg.objective, cfg.loss_cap)[1]
    if acc > target:
        return False, acc, None
    if held is None:
        return True, acc, acc
    passes[0] += held.n / n
    h = held.loss_accuracy(work, cfg.objective, cfg.loss_cap)[1]
    return h <= held_target, acc, h


def drop_each(
    cfg: AdvParamsConfig,
    work: nn.Module,
    kept: list[tuple[str, int, float, float]],
    cands: dict[str, nn.Parameter],
    batch: LockBatches,
    held: LockBatches | None,
    targets: tuple[float, float],
    passes: list[float],
    n: int,
    state: tuple[float, float | None],
) -> tuple[list[tuple[str, int, float, float]], float, float | None]:
    """After the prefix bisection, each kept change in turn, weakest first, is undone for
    good if the stop rule still holds without it (one forward pass per change) [ours]: on
    transformers the first-order ranking the bisection uses keeps many changes the lock
    does not need."""
    acc, hold_acc = state
    out = list(kept)
    for move in reversed(kept):
        name, index, old, new = move
        flat = cands[name].data.view(-1)
        with torch.no_grad():
            flat[index] = old
        ok, a, h = _rule_holds(cfg, work, batch, held, targets, passes, n)
        if ok and len(out) > 1:
            out.remove(move)
            acc, hold_acc = a, h
        else:
            with torch.no_grad():
                flat[index] = new
    return out, acc, hold_acc
