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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from advparams.devices import model_device
from advparams.registry import validated
from advparams.schemes.base import SCHEMES, LockProgress
from advparams.schemes.locking import (
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
        """Greedy adversarial perturbation, one scalar per round."""
        cfg = self.config
        device = model_device(model)
        work, cands, samples, target = setup.work, setup.candidates, setup.samples, setup.target
        orig_dtypes = {n: p.dtype for n, p in model.named_parameters()}

        def loss_acc() -> tuple[float, float]:
            return samples.loss_accuracy(work, cfg.objective, cfg.loss_cap)

        bounds = tensor_bounds(cands, cfg.margin)
        chosen = {name: torch.zeros(p.shape, dtype=torch.bool, device=device) for name, p in cands.items()}

        loss, acc = loss_acc()
        acc_before = acc
        changed: list[tuple[str, int]] = []
        rounds, stopped = 0, "target"
        max_rounds = 4 * cfg.max_params
        while True:
            if acc <= target:
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

        positions = {
            name: torch.tensor([i for nm, i in changed if nm == name], dtype=torch.long)
            for name in {nm for nm, _ in changed}
        }
        return Search(positions, acc_before, acc, rounds, stopped, exact=True)

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
