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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from advparams.registry import validated
from advparams.schemes.advparams_greedy import greedy_search
from advparams.schemes.advparams_search import batched_search, move_scores
from advparams.schemes.base import SCHEMES, LockProgress
from advparams.schemes.lock_samples import lock_objective
from advparams.schemes.locking import (
    LockSetup,
    ParameterScheme,
    Search,
    candidate_parameters,
    check_lock_options,
)

__all__ = ["AdvParams", "AdvParamsConfig", "lock_objective", "move_scores", "select_candidates"]


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
        holdout_rule: what the held-out samples must show before the search stops:
            ``"bound"`` (default), an accuracy whose one-sided Clopper-Pearson bound at
            ``check_level`` is at most the target, so that they certify it on their own;
            ``"margin"``, the earlier rule: the target less ``confidence`` binomial standard
            errors, never below half way from chance to the target, which let test accuracy
            above the target through (``docs/advparams.md``) [ours].
        confidence: z of the ``"margin"`` rule: the lock stops when the held-out accuracy
            plus ``z * sqrt(t (1 - t) / n_holdout)`` is at most the target ``t``; 0: the
            held-out accuracy itself.
        search_samples: batched: how many lock samples its gradients use; the others
            are held out. None: a quarter of the lock samples, at most 128 [inferred].
        first_batch: batched: values changed in the first round; later rounds are sized
            from the accuracy drop per value seen so far, at most ``growth`` times the
            round before.
        growth: batched: the largest factor by which a round may outgrow the one before
            (1.2 [inferred]: measured against 1.5 in ``docs/advparams.md``).
        prune: batched: once the stop rule holds, rank every change by its first-order
            share of the objective at the locked state, ``g * (new - old)``, and undo the
            least useful ones while the stop rule still holds (bisection; a few forward
            passes) [ours]; False: only the last round is trimmed.
        prune_each: batched, with ``prune``: then try undoing each kept change on its own,
            weakest first, keeping it undone while the stop rule holds (one forward pass
            per change) [ours, experimental: fewer values, but the lock then sits at the
            edge of its held-out rule and the check on unseen data certifies it less often].
        grow_without_drop: batched: let a round grow (``growth``) after a round that did
            not lower the accuracy (default, as measured in ``docs/advparams.md``); False:
            a round grows only on evidence that its values work [ours, experimental: on
            transformers the accuracy stays flat for many rounds before it falls, and
            growing through them compounds into hundreds of changes].
        check_samples: samples drawn class-balanced from the data apart from the lock
            samples, never shown to the search; the lock meets its target only when the
            one-sided Clopper-Pearson bound on its accuracy on them at ``check_level`` is
            at most the target, so the target holds on unseen data with that
            probability, whatever the search did [ours]. 0: no check.
        check_level: the confidence of the lock's guarantee.
        check_tries: how many times the lock may search and check: when the check does
            not certify the target, the search starts again from the original with the
            held-out threshold lowered by the check's excess over what the next check
            can certify plus half a point, up to this many searches. The first check
            spends 80 % of ``1 - check_level``, the others share the rest, so a lock
            certified on any of them holds its target with probability ``check_level``
            (union bound). More than one try only where a later check could still
            certify a model at chance (2,000 check samples for a 12 % target on ten
            classes; 1,000 could not); otherwise one check at ``check_level`` [ours].
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
    holdout_rule: Literal["bound", "margin"] = "bound"
    confidence: float = 1.5
    search_samples: int | None = None
    first_batch: int = 1
    growth: float = 1.2
    prune: bool = True
    prune_each: bool = False
    grow_without_drop: bool = True
    check_samples: int = 2000
    check_level: float = 0.95
    check_tries: int = 2

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
        if self.holdout_rule not in ("bound", "margin"):
            raise ValueError(f"holdout_rule must be 'bound' or 'margin', got {self.holdout_rule!r}")
        if not 0.0 <= self.confidence <= 5.0:
            raise ValueError(f"confidence must be in [0, 5], got {self.confidence}")
        if not 1.0 <= self.growth <= 16.0:
            raise ValueError(f"growth must be in [1, 16], got {self.growth}")
        if (self.search_samples is not None and self.search_samples < 1) or self.first_batch < 1:
            raise ValueError("search_samples and first_batch must be at least 1")


def select_candidates(model: nn.Module, config: AdvParamsConfig) -> dict[str, nn.Parameter]:
    """The parameters AdvParams may perturb, by name (see :class:`AdvParamsConfig`)."""
    return candidate_parameters(model, include=config.include, exclude=config.exclude, include_1d=config.include_1d)


@SCHEMES.register("advparams")
class AdvParams(ParameterScheme[AdvParamsConfig]):
    """AdvParams (Xue et al., arXiv 2105.13697, 2021): adversarial perturbation of a few parameters."""

    name = "advparams"
    Config = AdvParamsConfig

    def search(self, model: nn.Module, setup: LockSetup, progress: Callable[[LockProgress], None] | None) -> Search:
        """The configured search (batched or greedy) with the held-out stop rule."""
        if self.config.search == "batched":
            return batched_search(self.config, model, setup, progress)
        return greedy_search(self.config, model, setup, progress)
