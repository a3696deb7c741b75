"""Undoing what a batched AdvParams search changed but the lock does not need: the
bisection over a ranking of the changes, and the one-by-one pass after it [ours]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from advparams.schemes.lock_samples import LockBatches

if TYPE_CHECKING:
    from advparams.schemes.advparams import AdvParamsConfig

__all__ = ["Change", "Pruning"]

Change = tuple[str, int, float, float]
"""One changed value: tensor name, flat index, original value, locked value."""


@dataclass
class Pruning:
    """What undoing changes needs: the search's model and candidates, its samples and the
    stop rule's targets (searched, held-out); ``passes`` counts the forward passes spent."""

    cfg: AdvParamsConfig
    work: nn.Module
    cands: dict[str, nn.Parameter]
    batch: LockBatches
    held: LockBatches | None
    targets: tuple[float, float]
    passes: list[float]
    n: int

    def rule_holds(self) -> tuple[bool, float, float | None]:
        """Whether the stop rule holds now: the batch's accuracy at the target and the
        held-out samples' at theirs; with both accuracies (the held-out one if measured)."""
        target, held_target = self.targets
        cfg = self.cfg
        self.passes[0] += self.batch.n / self.n
        acc = self.batch.loss_accuracy(self.work, cfg.objective, cfg.loss_cap)[1]
        if acc > target:
            return False, acc, None
        if self.held is None:
            return True, acc, acc
        self.passes[0] += self.held.n / self.n
        h = self.held.loss_accuracy(self.work, cfg.objective, cfg.loss_cap)[1]
        return h <= held_target, acc, h

    def _set(self, change: Change, locked: bool) -> None:
        name, index, old, new = change
        with torch.no_grad():
            self.cands[name].data.view(-1)[index] = new if locked else old

    def trim(self, last: list[Change]) -> tuple[int, float, float | None]:
        """Bisects for the fewest of ``last`` (a prefix, by score) that meet the stop rule;
        returns how many are kept and the batch's and held-out accuracy."""
        lo, hi = 0, len(last)  # the state before the round failed the rule, all of it passed
        best: tuple[float, float | None] | None = None
        while hi - lo > 1:
            mid = (lo + hi) // 2
            for i, change in enumerate(last):
                self._set(change, i < mid)
            ok, acc, h = self.rule_holds()
            if ok:
                hi, best = mid, (acc, h)
            else:
                lo = mid
        for i, change in enumerate(last):
            self._set(change, i < hi)
        if best is None:  # nothing removed: measure the full round's state again
            _, acc, h = self.rule_holds()
            best = (acc, h)
        return hi, best[0], best[1]

    def drop_each(
        self, kept: list[Change], state: tuple[float, float | None]
    ) -> tuple[list[Change], float, float | None]:
        """After the bisection, each kept change in turn, weakest first, is undone for good
        if the stop rule still holds without it (one forward pass per change) [ours]: on
        transformers the first-order ranking the bisection uses keeps many changes the lock
        does not need."""
        acc, hold_acc = state
        out = list(kept)
        for change in reversed(kept):
            self._set(change, False)
            ok, a, h = self.rule_holds()
            if ok and len(out) > 1:
                out.remove(change)
                acc, hold_acc = a, h
            else:
                self._set(change, True)
        return out, acc, hold_acc
