"""AdvParams (Xue et al., "AdvParams: An Active DNN Intellectual Property Protection
Technique via Adversarial Perturbation Based Parameter Encryption", arXiv 2105.13697,
2021; IEEE TETC).

The paper's body is not public; this implementation follows a reconstruction from its
abstract and the group's related papers, every detail of which is inferred (see
``docs/advparams.md``), with these choices:

* candidates: weight tensors (``dim >= 2``: convolution, linear, attention projections),
  optionally biases and normalisation affine parameters; never BatchNorm statistics;
* greedy selection, one scalar per round, with the gradient of the cross-entropy on
  the lock samples recomputed after every change;
* ranking by the first-order loss gain of a range-bounded move, ``|g| * min(room, S*ε*r)``
  (``selection="gain"``, default) or by ``|g|`` alone (``selection="gradient"``);
* iterative sign steps on the chosen scalar, ``v <- clip(v + ε r sign(g), lo + β r, hi - β r)``,
  at most ``S`` while the loss rises, so a locked value never leaves (nor reaches) its
  tensor's original ``[min, max]``;
* the loss raised is the cross-entropy with each sample's term capped (``capped-ce``,
  ours: the plain mean stalls on larger nets, see ``docs/advparams.md``); ``objective="ce"``
  gives the plain mean;
* stop when the accuracy on the lock samples is at most the target (default: chance
  + 2 points) or the budget of changed values is spent.

The search runs on a float32 copy; every tried value is first rounded to the model's
own dtype, so float16 and bfloat16 models are locked with exactly the values searched.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from advparams.devices import model_device
from advparams.metrics.accuracy import logits_of
from advparams.registry import validated
from advparams.schemes.base import SCHEMES, LockProgress
from advparams.schemes.locking import (
    LockBatches,
    LockSetup,
    ParameterScheme,
    Search,
    candidate_parameters,
    check_lock_options,
    lock_objective,
    tensor_bounds,
)

__all__ = ["AdvParams", "AdvParamsConfig", "lock_objective", "move_scores", "select_candidates"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
@validated
class AdvParamsConfig:
    """Settings of :class:`AdvParams`; the defaults need no tuning.

    Attributes:
        max_params: budget: the most scalar parameters changed (the key's size).
        target_accuracy: stop once accuracy on the lock samples is at most this, in
            [0, 1]; ``None``: chance level + 0.02 (1/num_classes + 2 points).
        num_samples: clean lock samples, drawn class-balanced from the data.
        step: ε, one sign step as a fraction of the tensor's original range.
        max_steps: S, sign steps per chosen scalar, taken while the loss rises.
        margin: β, locked values stay at least β·range inside the original [min, max].
        selection: ``"gain"`` ranks by ``|grad| x achievable move``; ``"gradient"`` by
            ``|grad|`` alone (closest to the paper's description).
        include: ``fnmatch`` patterns of parameter names to consider; empty: all.
        exclude: ``fnmatch`` patterns of parameter names to leave alone.
        include_1d: also consider 1-d parameters (biases, normalisation scales/shifts).
        objective: the loss to raise: ``"capped-ce"`` (default), the mean of
            ``min(CE_i, loss_cap)``, so samples already far on the wrong side stop steering
            the search towards them; ``"ce"``, the plain mean cross-entropy (the paper's
            wording), which on larger nets can stall above the target (docs/advparams.md).
        loss_cap: the per-sample cap of ``"capped-ce"`` (4.6 ~ 2 ln 10: p(true) ~ 1%).
        batch_size: lock samples per forward pass (gradients accumulate across passes).
        seed: seeds the choice of lock samples when no generator is passed.
        search: ``"batched"`` (default, ours): several scalars from each gradient,
            spread over tensors and rows, each moved its whole reach at once, the forward
            pass that checks a round reused for the next gradient, on ``search_samples``
            of the samples; ``"greedy"``: one scalar per gradient and up to ``max_steps``
            forward passes of line search for it, on all the searched samples (the
            reconstruction of the paper's search; about 13-52 forward+backward passes).
        holdout: the least share of the lock samples held out of the search; the lock
            stops only when the target also holds on them (unseen data); 0 (greedy): the
            stop rule sees only the searched samples, as before. The batched search holds
            out every sample its gradients do not use, so more than this share.
        confidence: z of the held-out check: the lock stops when the held-out accuracy
            plus ``confidence`` binomial standard errors at the target,
            ``z * sqrt(t (1 - t) / n_holdout)``, is at most the target ``t``, so that unseen
            data is at the target with about 93 % confidence at the default z = 1.5 [inferred; ours];
            0: the held-out accuracy itself.
        search_samples: batched: how many lock samples its gradients use; the others
            are held out. None: a quarter of the lock samples, at most 128 [inferred].
        first_batch: batched: values changed in the first round; later rounds are sized
            from the accuracy drop per value seen so far, at most ``growth`` times the
            round before.
        growth: batched: the largest factor by which a round may outgrow the one before.
    """

    max_params: int = 100
    target_accuracy: float | None = None
    num_samples: int = 1000
    step: float = 0.25
    max_steps: int = 5
    margin: float = 0.02
    selection: Literal["gain", "gradient"] = "gain"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_1d: bool = False
    objective: Literal["ce", "capped-ce"] = "capped-ce"
    loss_cap: float = 4.6
    batch_size: int = 1000
    seed: int = 0
    search: Literal["batched", "greedy"] = "batched"
    holdout: float = 0.25
    confidence: float = 1.5
    search_samples: int | None = None
    first_batch: int = 1
    growth: float = 1.5

    def __post_init__(self) -> None:
        if self.max_params < 1:
            raise ValueError(f"max_params must be at least 1, got {self.max_params}")
        if self.target_accuracy is not None and not 0.0 <= self.target_accuracy <= 1.0:
            raise ValueError(f"target_accuracy must be in [0, 1], got {self.target_accuracy}")
        check_lock_options(self)
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")
        if not 0.0 < self.step <= 1.0:
            raise ValueError(f"step must be in (0, 1], got {self.step}")
        if not 0.0 <= self.margin < 0.5:
            raise ValueError(f"margin must be in [0, 0.5), got {self.margin}")
        if self.objective not in ("ce", "capped-ce"):
            raise ValueError(f"objective must be 'ce' or 'capped-ce', got {self.objective!r}")
        if self.loss_cap <= 0:
            raise ValueError(f"loss_cap must be positive, got {self.loss_cap}")
        if self.selection not in ("gain", "gradient"):
            raise ValueError(f"selection must be 'gain' or 'gradient', got {self.selection!r}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if not 0.0 <= self.confidence <= 5.0:
            raise ValueError(f"confidence must be in [0, 5], got {self.confidence}")
        if not 1.0 <= self.growth <= 16.0:
            raise ValueError(f"growth must be in [1, 16], got {self.growth}")
        if (self.search_samples is not None and self.search_samples < 1) or self.first_batch < 1:
            raise ValueError("search_samples and first_batch must be at least 1")


def select_candidates(model: nn.Module, config: AdvParamsConfig) -> dict[str, nn.Parameter]:
    """The parameters AdvParams may perturb, by name (see :class:`AdvParamsConfig`)."""
    return candidate_parameters(model, include=config.include, exclude=config.exclude, include_1d=config.include_1d)


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


@SCHEMES.register("advparams")
class AdvParams(ParameterScheme[AdvParamsConfig]):
    """AdvParams (Xue et al., arXiv 2105.13697, 2021): adversarial perturbation of a few parameters."""

    name = "advparams"
    Config = AdvParamsConfig

    def search(self, model: nn.Module, setup: LockSetup, progress: Callable[[LockProgress], None] | None) -> Search:
        """The configured search (batched or greedy) with the held-out stop rule."""
        if self.config.search == "batched":
            return self._batched(model, setup, progress)
        return self._greedy(model, setup, progress)

    def _held_target(self, target: float, held: LockBatches | None) -> float:
        """The accuracy the held-out samples must reach: the target less ``confidence``
        standard errors."""
        if held is None:
            return target
        return target - self.config.confidence * math.sqrt(max(target * (1.0 - target), 0.0) / held.n)

    def _split(self, setup: LockSetup, searched: int | None = None) -> tuple[LockBatches, LockBatches | None]:
        """The searched samples (the first ``searched``, at most all but the ``holdout``
        share) and the held-out rest (None when nothing is held out)."""
        n = setup.samples.n
        keep = n - (round(self.config.holdout * n) if n >= 2 else 0)
        if searched is not None:
            keep = max(1, min(keep, searched))
        if keep >= n:
            return setup.samples, None
        return setup.samples.part(0, keep), setup.samples.part(keep, n)

    def _batched(self, model: nn.Module, setup: LockSetup, progress: Callable[[LockProgress], None] | None) -> Search:
        """Several scalars per gradient, the check's forward pass reused for the next one."""
        cfg = self.config
        device = model_device(model)
        work, cands, target, n = setup.work, setup.candidates, setup.target, setup.samples.n
        orig_dtypes = {name: p.dtype for name, p in model.named_parameters()}
        size = cfg.search_samples if cfg.search_samples is not None else max(1, min(128, n // 4))
        batch, held = self._split(setup, size)
        bounds = tensor_bounds(cands, cfg.margin)
        chosen = {name: torch.zeros(p.numel(), dtype=torch.bool, device=device) for name, p in cands.items()}
        passes = [0.0, 0.0]

        def forward() -> tuple[list[torch.Tensor], float, float]:
            """The objective (graph kept for a backward) and accuracy on ``batch``."""
            for p in cands.values():
                p.requires_grad_(True)
                p.grad = None
            losses, correct = [], 0
            for xb, yb in batch.batches:
                out = logits_of(work, xb)
                losses.append(lock_objective(out, yb, cfg.objective, cfg.loss_cap) / batch.n)
                correct += int((out.detach().argmax(1) == yb).sum())
            passes[0] += batch.n / n
            return losses, float(sum(float(v.detach()) for v in losses)), correct / batch.n

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
            assert held is not None
            passes[0] += held.n / n
            return held.loss_accuracy(work, cfg.objective, cfg.loss_cap)[1]

        losses, loss, acc = forward()
        acc_before = acc
        changed: list[tuple[str, int]] = []
        rounds, k, stopped = 0, cfg.first_batch, "target"
        hold_acc: float | None = None
        held_target = self._held_target(target, held)
        max_rounds = 4 * cfg.max_params
        last: list[tuple[str, int, float, float]] = []
        while True:
            hold_acc = None
            if acc <= target:
                hold_acc = held_accuracy() if held is not None else acc
                if hold_acc <= held_target:
                    stopped = "target"
                    break
            if len(changed) >= cfg.max_params:
                stopped = "budget"
                break
            if rounds >= max_rounds:
                stopped = "rounds"
                break
            grads = backward(losses)
            rounds += 1
            picks = self._pick(grads, cands, bounds, chosen, min(k, cfg.max_params - len(changed)))
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
            before = acc
            losses, loss, acc = forward()
            # how far there is to go: on the searched batch, or (once it is at the target)
            # on the held-out samples, where the last check fell short
            gap = acc - target if acc > target else (hold_acc - held_target if hold_acc is not None else 0.0)
            drop_per_value = (before - acc) / len(picks) if before > acc else 0.0
            if drop_per_value > 0 and gap > 0:
                k = max(1, min(math.ceil(cfg.growth * len(picks)), math.ceil(gap / drop_per_value)))
            else:
                k = max(1, math.ceil(cfg.growth * len(picks)) if gap > 0 else len(picks))
            if progress is not None:
                progress(LockProgress(rounds, len(changed), cfg.max_params, acc, target, loss, acc_before))
            log.debug("round %d: %d values, loss=%.4f acc=%.4f", rounds, len(picks), loss, acc)
        release()
        if stopped == "target" and len(last) > 1:
            # the last round may have changed more values than the target needed: keep the
            # shortest prefix of it (by score) that still meets the stop rule (bisection)
            kept, acc, hold_acc = self._trim(work, last, cands, batch, held, (target, held_target), passes, n)
            drop = {(name, index) for name, index, _, _ in last[kept:]}
            changed = [c for c in changed if c not in drop]
        if held is not None and hold_acc is None:
            hold_acc = held_accuracy()
        # accuracy over all lock samples: the batch's and the held-out's
        correct = acc * batch.n + (hold_acc * held.n if held is not None and hold_acc is not None else 0.0)
        return _found(changed, acc_before, round(correct) / n, rounds, stopped, passes, acc, held, hold_acc)

    def _trim(
        self,
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
        cfg = self.config
        target, held_target = targets

        def set_prefix(m: int) -> None:
            with torch.no_grad():
                for i, (name, index, old, new) in enumerate(last):
                    cands[name].data.view(-1)[index] = new if i < m else old

        def check() -> tuple[bool, float, float | None]:
            passes[0] += batch.n / n
            acc = batch.loss_accuracy(work, cfg.objective, cfg.loss_cap)[1]
            if acc > target:
                return False, acc, None
            if held is None:
                return True, acc, acc
            passes[0] += held.n / n
            h = held.loss_accuracy(work, cfg.objective, cfg.loss_cap)[1]
            return h <= held_target, acc, h

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

    def _pick(
        self,
        grads: dict[str, torch.Tensor],
        cands: dict[str, nn.Parameter],
        bounds: dict[str, tuple[float, float, float]],
        chosen: dict[str, torch.Tensor],
        k: int,
    ) -> list[tuple[str, int]]:
        """Up to ``k`` scalars by score, at most one per output row (the first axis) of a
        tensor and at most half of them (rounded up) in one tensor, so that the moves of a
        round do not interact much."""
        cfg = self.config
        pool: list[tuple[float, str, int]] = []
        for name, p in cands.items():
            lo, hi, r = bounds[name]
            score = move_scores(
                grads[name], p.detach().reshape(-1), lo, hi, cfg.max_steps * cfg.step * r, cfg.selection
            )
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

    def _greedy(self, model: nn.Module, setup: LockSetup, progress: Callable[[LockProgress], None] | None) -> Search:
        """Greedy adversarial perturbation, one scalar per round."""
        cfg = self.config
        device = model_device(model)
        work, cands, target = setup.work, setup.candidates, setup.target
        samples, held = self._split(setup)
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
        max_rounds = 4 * cfg.max_params
        hold_acc: float | None = None
        held_target = self._held_target(target, held)
        while True:
            hold_acc = None
            if acc <= target:
                if held is not None:
                    passes[0] += held.n / setup.samples.n
                hold_acc = held.loss_accuracy(work, cfg.objective, cfg.loss_cap)[1] if held is not None else acc
                if hold_acc <= held_target:
                    stopped = "target"
                    break
            if len(changed) >= cfg.max_params:
                stopped = "budget"
                break
            if rounds >= max_rounds:
                stopped = "rounds"
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
            gain, new_loss, new_acc = self._line_search(
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
        overall = (acc * samples.n + hold_acc * held.n) / setup.samples.n if held and hold_acc is not None else acc
        return _found(changed, acc_before, overall, rounds, stopped, passes, acc, held, hold_acc)

    def _line_search(
        self,
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
        cfg = self.config
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


def _found(
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
