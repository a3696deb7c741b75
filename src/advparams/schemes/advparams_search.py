"""The batched search of :class:`~advparams.schemes.advparams.AdvParams` (the default,
ours), and what it shares with the greedy one (:mod:`advparams.schemes.advparams_greedy`):
the move score, the held-out stop rule and the result (``docs/advparams.md``, "Locking
at scale")."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from advparams.devices import model_device
from advparams.metrics.binomial import certifiable_rate
from advparams.schemes.advparams_prune import Pruning
from advparams.schemes.base import LockProgress
from advparams.schemes.lock_samples import LockBatches, lock_objective
from advparams.schemes.locking import LockSetup, Search, tensor_bounds
from advparams.tasks import CLASSIFICATION

if TYPE_CHECKING:
    from advparams.schemes.advparams import AdvParamsConfig

__all__ = [
    "batched_search",
    "certifiable_rate",
    "found_search",
    "holdout_target",
    "move_scores",
    "split_samples",
    "stop_reason",
]

log = logging.getLogger(__name__)


def move_scores(
    grad: torch.Tensor, value: torch.Tensor, lo: float, hi: float, reach: float, selection: str
) -> torch.Tensor:
    """Score of moving each scalar against the loss gradient within ``[lo, hi]``.

    ``room`` is how far a value can move in the ascent direction ``sign(grad)`` before it
    hits the bound; a scalar with no room scores 0. With ``selection="gain"`` the score is
    the first-order loss increase ``|grad| * min(room, reach)``; with ``"gradient"`` it
    is ``|grad|`` wherever ``room > 0``.
    """
    room = torch.where(grad > 0, hi - value, value - lo).clamp(min=0.0)
    if selection == "gain":
        return grad.abs() * room.clamp(max=reach)
    return torch.where(room > 0, grad.abs(), torch.zeros_like(grad))


def holdout_target(
    confidence: float, setup: LockSetup, held: LockBatches | None, rule: str = "margin", level: float = 0.95
) -> float:
    """The accuracy the held-out samples must reach [ours].

    ``rule="bound"``: the largest accuracy whose one-sided Clopper-Pearson bound at
    ``level`` on the held-out samples is at most the target ``t``, so that they certify it
    on their own (the search looks at them after every round, so this is not yet a
    guarantee: the check set gives that).

    ``rule="margin"``: ``t`` less ``confidence`` binomial standard errors
    ``sqrt(t (1 - t) / n_held)``, but never below the midpoint of chance and ``t`` (nor
    above ``t``). With few held-out samples the margin alone would ask for a model worse
    than chance: a locked model near chance answers each class about as often as the
    held-out samples hold it, so it would go on changing values to fit the held-out
    sample's class counts. Measured to let test accuracy above ``t`` through
    (``docs/advparams.md``, "The target on unseen data").

    Either is lowered by ``setup.shift`` when the lock tries again after a failed check."""
    target = setup.target
    if held is None:
        value = target
    elif rule == "bound" or held.task is not CLASSIFICATION:  # the margin's errors are a classifier's
        value = held.task.certifiable(target, held.n, level)
    else:
        margin = target - confidence * math.sqrt(max(target * (1.0 - target), 0.0) / held.n)
        chance = 1.0 / setup.num_classes if setup.num_classes > 0 else 0.0
        value = min(target, max(margin, (chance + target) / 2))
    return value - setup.shift if setup.shift else value


def stop_reason(
    cfg: AdvParamsConfig,
    accuracy: float,
    targets: tuple[float, float],
    held_accuracy: Callable[[], float],
    changed: int,
    rounds: int,
) -> tuple[str | None, float | None]:
    """Why a search stops now (None: it goes on), and the held-out accuracy when it was
    measured: the searched samples at the target and the held-out ones at theirs
    (``"target"``), the budget of values spent, or ``4 * max_params`` rounds run."""
    target, held_target = targets
    held = None
    if accuracy <= target:
        held = held_accuracy()
        if held <= held_target:
            return "target", held
    if changed >= cfg.max_params:
        return "budget", held
    if rounds >= 4 * cfg.max_params:
        return "rounds", held
    return None, held


def split_samples(
    cfg: AdvParamsConfig, setup: LockSetup, searched: int | None = None
) -> tuple[LockBatches, LockBatches | None]:
    """The searched samples (the first ``searched``, at most all but the ``holdout``
    share) and the held-out rest (None when nothing is held out)."""
    n = setup.samples.n
    keep = n - (round(cfg.holdout * n) if n >= 2 else 0)
    if searched is not None:
        keep = max(1, min(keep, searched))
    if keep >= n:
        return setup.samples, None
    return setup.samples.part(0, keep), setup.samples.part(keep, n)


def batched_search(
    cfg: AdvParamsConfig, model: nn.Module, setup: LockSetup, progress: Callable[[LockProgress], None] | None
) -> Search:
    """Several scalars per gradient, the check's forward pass reused for the next one."""
    device = model_device(model)
    work, cands, target, n = setup.work, setup.candidates, setup.target, setup.samples.n
    orig_dtypes = {name: p.dtype for name, p in model.named_parameters()}
    size = cfg.search_samples if cfg.search_samples is not None else max(1, min(128, n // 4))
    batch, held = split_samples(cfg, setup, size)
    task = batch.task
    bounds = tensor_bounds(cands, cfg.margin)
    chosen = {name: torch.zeros(p.numel(), dtype=torch.bool, device=device) for name, p in cands.items()}
    passes = [0.0, 0.0]

    def forward() -> tuple[list[torch.Tensor], float, float]:
        """The objective (graph kept for a backward) and accuracy on ``batch``."""
        for p in cands.values():
            p.requires_grad_(True)
            p.grad = None
        losses, total, count = [], 0.0, 0
        for xb, yb in batch.batches:
            out, target_b = task.outputs(work, xb, yb)
            losses.append(lock_objective(out, target_b, cfg.objective, cfg.loss_cap) / batch.n)
            got, k = task.tally(out.detach(), target_b)
            total, count = total + got, count + k
        passes[0] += batch.n / n
        return losses, float(sum(float(v.detach()) for v in losses)), task.level(total, count)

    def backward(losses: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        sum(losses).backward()  # type: ignore[union-attr]
        passes[1] += batch.n / n
        grads = {k: p.grad.detach().reshape(-1).clone() if p.grad is not None else torch.zeros(p.numel(),
                 device=p.device) for k, p in cands.items()}  # fmt: skip
        release()
        return grads

    def release() -> None:
        for p in cands.values():
            p.requires_grad_(False)
            p.grad = None

    def held_accuracy() -> float:
        if held is None:
            return acc
        passes[0] += held.n / n
        return held.loss_accuracy(work, cfg.objective, cfg.loss_cap)[1]

    losses, loss, acc = forward()
    acc_before = acc
    changed: list[tuple[str, int]] = []
    rounds, k, stopped = 0, cfg.first_batch, "target"
    hold_acc: float | None = None
    held_target = holdout_target(cfg.confidence, setup, held, cfg.holdout_rule, cfg.check_level)
    last: list[tuple[str, int, float, float]] = []
    moves: dict[tuple[str, int], tuple[float, float]] = {}
    while True:
        reason, hold_acc = stop_reason(cfg, acc, (target, held_target), held_accuracy, len(changed), rounds)
        if reason is not None:
            stopped = reason
            break
        grads = backward(losses)
        rounds += 1
        picks = pick_round(cfg, grads, cands, bounds, chosen, min(k, cfg.max_params - len(changed)))
        if not picks:
            stopped = "exhausted"
            break
        last = []  # this round's changes, in the order of their scores: (name, index, old, new)
        with torch.no_grad():
            for name, index in picks:
                chosen[name][index] = True
                flat = cands[name].data.view(-1)
                lo, hi, r = bounds[name]
                v0 = float(flat[index])
                step = cfg.max_steps * cfg.step * r * (1.0 if float(grads[name][index]) > 0 else -1.0)
                q = float(torch.tensor(min(max(v0 + step, lo), hi), dtype=orig_dtypes[name]).float())
                if q != v0:
                    flat[index] = q
                    changed.append((name, index))
                    last.append((name, index, v0, q))
                    moves[(name, index)] = (v0, q)
        before = acc
        losses, loss, acc = forward()
        # how far there is to go: on the searched batch, or (once it is at the target)
        # on the held-out samples, where the last check fell short
        gap = acc - target if acc > target else (hold_acc - held_target if hold_acc is not None else 0.0)
        drop_per_value = (before - acc) / len(picks) if before > acc else 0.0
        if drop_per_value > 0 and gap > 0:
            k = max(1, min(math.ceil(cfg.growth * len(picks)), math.ceil(gap / drop_per_value)))
        else:  # no accuracy drop seen: grow only where the configuration says so
            grow = gap > 0 and (cfg.grow_without_drop or before > acc)
            k = max(1, math.ceil(cfg.growth * len(picks)) if grow else len(picks))
        if progress is not None:
            progress(LockProgress(rounds, len(changed), cfg.max_params, acc, target, loss, acc_before))
        log.debug("round %d: %d values, loss=%.4f acc=%.4f", rounds, len(picks), loss, acc)
    release()
    pruning = Pruning(cfg, work, cands, batch, held, (target, held_target), passes, n)
    if stopped == "target" and cfg.prune and len(changed) > 1:
        # undo what the lock does not need: rank every change by its first-order share of
        # the objective at the locked state, g * (new - old), and keep the shortest
        # prefix of that ranking that still meets the stop rule (bisection)
        grads = backward(forward()[0])
        ranked = sorted(
            ((name, index, *moves[(name, index)]) for name, index in changed),
            key=lambda m: -float(grads[m[0]][m[1]]) * (m[3] - m[2]),
        )
        kept, acc, hold_acc = pruning.trim(ranked)
        survivors = ranked[:kept]
        if cfg.prune_each:
            survivors, acc, hold_acc = pruning.drop_each(survivors, (acc, hold_acc))
        keep = {(name, index) for name, index, _, _ in survivors}
        changed = [c for c in changed if c in keep]
    elif stopped == "target" and len(last) > 1:
        # the last round may have changed more values than the target needed: keep the
        # shortest prefix of it (by score) that still meets the stop rule (bisection)
        kept, acc, hold_acc = pruning.trim(last)
        drop = {(name, index) for name, index, _, _ in last[kept:]}
        changed = [c for c in changed if c not in drop]
    if held is not None and hold_acc is None:
        hold_acc = held_accuracy()
    # accuracy over all lock samples: the batch's and the held-out's
    parts = [(acc, batch.n)] + ([(hold_acc, held.n)] if held is not None and hold_acc is not None else [])
    overall = task.combine(parts, n)
    return found_search(changed, acc_before, overall, rounds, stopped, passes, acc, held, hold_acc)


def pick_round(
    cfg: AdvParamsConfig,
    grads: dict[str, torch.Tensor],
    cands: dict[str, nn.Parameter],
    bounds: dict[str, tuple[float, float, float]],
    chosen: dict[str, torch.Tensor],
    k: int,
) -> list[tuple[str, int]]:
    """Up to ``k`` scalars by score, at most one per output row (the first axis) of a
    tensor and at most half of them (rounded up) in one tensor, so that the moves of a
    round do not interact much."""
    pool: list[tuple[float, str, int]] = []
    for name, p in cands.items():
        lo, hi, r = bounds[name]
        score = move_scores(grads[name], p.detach().reshape(-1), lo, hi, cfg.max_steps * cfg.step * r, cfg.selection)
        score = score.masked_fill(chosen[name], 0.0)
        top = torch.topk(score, min(int(score.numel()), 4 * k))
        pool += [(float(v), name, int(i)) for v, i in zip(top.values, top.indices, strict=True) if float(v) > 0]
    pool.sort(key=lambda t: -t[0])
    per_tensor_cap = max(1, math.ceil(k / 2))
    picks: list[tuple[str, int]] = []
    rows: set[tuple[str, int]] = set()
    count: dict[str, int] = {}
    for _, name, index in pool:
        row_size = max(1, cands[name].numel() // max(1, cands[name].shape[0]))
        row = (name, index // row_size)
        if row in rows or count.get(name, 0) >= per_tensor_cap:
            continue
        picks.append((name, index))
        rows.add(row)
        count[name] = count.get(name, 0) + 1
        if len(picks) == k:
            break
    return picks


def found_search(
    changed: list[tuple[str, int]],
    accuracy_before: float,
    accuracy_after: float,
    rounds: int,
    stopped: str,
    passes: list[float],
    search_accuracy: float,
    held: LockBatches | None,
    held_accuracy: float | None,
) -> Search:
    """What either search found, as a :class:`Search` (positions grouped by tensor)."""
    positions = {
        name: torch.tensor([i for nm, i in changed if nm == name], dtype=torch.long)
        for name in {nm for nm, _ in changed}
    }
    return Search(
        positions,
        accuracy_before,
        accuracy_after,
        rounds,
        stopped,
        exact=True,
        passes=(passes[0], passes[1]),
        search_accuracy=search_accuracy if held is not None else None,
        holdout=held.n if held is not None else 0,
        holdout_accuracy=held_accuracy if held is not None else None,
    )
