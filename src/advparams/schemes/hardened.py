"""Hardened lock: a keyed shuffle of every parameter tensor (``docs/hardened.md``).

Each candidate tensor's values are moved among its own positions, in an order drawn
from a 32-byte secret (:mod:`advparams.keys.shuffle`): a share ``fraction`` of them, by
default all. What this buys, as measured in ``docs/hardened.md``:

* the locked model holds exactly the original values of every tensor, so per-tensor
  statistics (KS tests, z-scores, extremes, clipping) see nothing unusual;
* the arrangement that made the model work is gone, not hidden among a few changes: an
  attacker who knows the method has no sparse repair to search for (retrace, flip-back,
  outlier reset), and half of the key restores half of a random arrangement;
* the key is the secret plus one ``[name, numel, count]`` triple per tensor, a few
  hundred bytes whatever the model's size; unlocking is bit-exact.

What it does not buy: the value distribution of each tensor stays, and a network
initialised from the trained distribution trains slightly better than PyTorch's default
initialisation, so fine-tuning keeps a small head start over training from scratch
(measured in the doc).

The secret comes from the operating system (``os.urandom``) unless ``reproducible`` is
set, which derives it from ``seed`` for research runs that must be repeatable; an attacker
who can guess that seed can unlock the model, so never ship such a lock.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from advparams.data.base import DataLike
from advparams.fingerprint import state_fingerprint
from advparams.keys.blocked import is_blocked
from advparams.keys.key import Key, Shuffle
from advparams.keys.shuffle import SECRET_BYTES
from advparams.models import count_parameters
from advparams.registry import validated
from advparams.schemes.advparams_search import holdout_target
from advparams.schemes.base import SCHEMES, LockProgress, LockResult, Scheme
from advparams.schemes.lock_finish import lock_report
from advparams.schemes.locking import check_lock_options, prepare_lock

logger = logging.getLogger(__name__)

AUTO_BLOCKED = 1 << 16
"""Values from which layout ``"auto"`` shuffles a tensor in blocks."""
INSECURE = (
    "reproducible: true derives the shuffle secret from the seed, so anyone who can guess the seed "
    "can unlock this model: use it for research runs only, never for a model you ship"
)


@dataclass(frozen=True)
@validated
class HardenedConfig:
    """Settings of :class:`Hardened`.

    Attributes:
        fraction: share of each candidate tensor's values that move, in (0, 1].
        include: ``fnmatch`` patterns of parameter names to shuffle; empty: all.
        exclude: patterns of parameter names to leave alone.
        include_1d: also shuffle 1-d parameters (biases, normalisation parameters).
        num_samples: lock samples on which the locked accuracy is reported.
        batch_size: samples per forward pass.
        seed: seeds the lock samples; with ``reproducible``, the secret too.
        reproducible: derive the secret from ``seed`` instead of ``os.urandom`` (research
            runs only: whoever guesses the seed can unlock the model).
        draws: secrets drawn (each from ``os.urandom``); the lock keeps, among those
            whose lock-sample accuracy meets the target with ``confidence`` standard
            errors to spare, the one whose locked model is closest to uninformative: the
            lowest accuracy that a majority-vote relabelling of its answers reaches
            (which is at least its plain accuracy and also catches a model that answers
            consistently wrong), ties broken by plain accuracy [inferred; ours]. 1: the
            first secret.
        max_draws: when none of the first ``draws`` meets the target, more secrets are
            drawn, up to this many in all, until one does [ours].
        holdout_rule: what a draw's lock-sample accuracy must show to be kept, as
            AdvParams' held-out rule: ``"bound"`` (default), an accuracy whose one-sided
            Clopper-Pearson bound at ``check_level`` is at most the target; ``"margin"``,
            the target less ``confidence`` binomial standard errors, never less than half
            way from chance to the target [ours]. The shuffle is not fitted to the lock
            samples, so their accuracy estimates the accuracy on unseen data.
        confidence: z of the ``"margin"`` rule.
        dither: low mantissa bits of every moved value XORed with a keyed stream after the
            move (:mod:`advparams.keys.shuffle`; capped at each dtype's mantissa, 23 for
            float32). 0: the locked tensors hold the original's values, only moved, which
            anyone holding the locked model and one other version of the weights can
            compare; per-user keys (``docs/tracing.md``) need 23 [ours].
        check_samples: samples drawn from the data apart from the lock samples, never used
            to choose the secret; the lock meets its target only when the one-sided
            Clopper-Pearson bound on its accuracy on them at ``check_level`` is at most the
            target (as :class:`~advparams.schemes.advparams.AdvParams`) [ours]. 0: no check.
        check_level: the confidence of that bound.
        layout: how a tensor's values move (``docs/scale.md``): ``"uniform"``, one keyed
            permutation of all the tensor's positions (:mod:`advparams.keys.shuffle`: a
            sort of the whole tensor, too slow for billions of values); ``"blocked"``,
            every value moved within its run of 4,096 consecutive positions and the runs
            moved (:mod:`advparams.keys.blocked`, at the speed of memory; it tells which
            values shared a run); ``"auto"`` (default), blocked for tensors of at least
            65,536 values when every value moves, uniform otherwise [ours].
    """

    fraction: float = 1.0
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_1d: bool = True
    num_samples: int = 1000
    batch_size: int = 1000
    seed: int = 0
    reproducible: bool = False
    draws: int = 8
    max_draws: int = 64
    holdout_rule: Literal["bound", "margin"] = "bound"
    confidence: float = 1.5
    dither: int = 0
    check_samples: int = 2000
    check_level: float = 0.95
    layout: Literal["auto", "uniform", "blocked"] = "auto"

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if not 1 <= self.draws <= 1000:
            raise ValueError(f"draws must be in [1, 1000], got {self.draws}")
        if not self.draws <= self.max_draws <= 1000:
            raise ValueError(f"max_draws must be in [draws, 1000], got {self.max_draws}")
        if self.holdout_rule not in ("bound", "margin"):
            raise ValueError(f"holdout_rule must be 'bound' or 'margin', got {self.holdout_rule!r}")
        if not 0.0 <= self.confidence <= 5.0:
            raise ValueError(f"confidence must be in [0, 5], got {self.confidence}")
        if not 0 <= self.dither <= 52:
            raise ValueError(f"dither must be in [0, 52] mantissa bits, got {self.dither}")
        if self.layout not in ("auto", "uniform", "blocked"):
            raise ValueError(f"layout must be 'auto', 'uniform' or 'blocked', got {self.layout!r}")
        if self.layout == "blocked" and self.fraction != 1.0:
            raise ValueError("layout 'blocked' moves every value of a tensor: it needs fraction 1")
        check_lock_options(self)


def _all_float32(model: nn.Module) -> bool:
    """Whether every floating tensor of ``model`` is float32 (its work copy is then the
    model itself, bit for bit)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return all(t.dtype == torch.float32 for t in tensors if t.is_floating_point())


def research_secret(seed: int, draw: int = 0) -> bytes:
    """The secret a ``reproducible`` lock derives from ``seed`` (not secret at all); draw
    0 is the one earlier versions used."""
    suffix = b"" if draw == 0 else f"/{draw}".encode()
    return hashlib.sha256(b"advparams-hardened-research-secret\0" + str(seed).encode() + suffix).digest()


def informativeness(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[float, float]:
    """``(relabelled accuracy, accuracy)`` of predicted labels: the first is the accuracy
    of the best map from predicted to true class (a majority vote per predicted class),
    what an attacker with these samples gets by relabelling the outputs.

    Example:
        >>> informativeness(torch.tensor([1, 1, 0, 0]), torch.tensor([0, 0, 1, 1]), 2)
        (1.0, 0.0)
    """
    counts = torch.zeros(num_classes, num_classes, dtype=torch.long)
    counts.index_put_((predictions.cpu(), labels.cpu()), torch.ones_like(labels.cpu()), accumulate=True)
    n = max(1, int(labels.numel()))
    return float(counts.max(1).values.sum()) / n, float((predictions.cpu() == labels.cpu()).sum()) / n


@SCHEMES.register("hardened")
class Hardened(Scheme[HardenedConfig]):
    """Keyed shuffle of every parameter tensor: same values, a secret arrangement."""

    name = "hardened"
    Config = HardenedConfig
    aims_at_target: ClassVar[bool] = False
    budget_option: ClassVar[str | None] = None  # sizes are shares of tensors: no count sweep

    def lock(
        self,
        model: nn.Module,
        data: DataLike,
        *,
        generator: torch.Generator | None = None,
        progress: Callable[[LockProgress], None] | None = None,
    ) -> LockResult:
        """Returns a shuffled copy of ``model`` and its key; ``model`` is not changed."""
        cfg = self.config
        setup = prepare_lock(model, data, cfg, generator)
        _, before = setup.samples.loss_accuracy(setup.work)
        if cfg.reproducible:
            logger.warning(INSECURE)
        num_classes = setup.samples.num_classes(setup.work)
        targets = setup.samples.targets()
        needed = holdout_target(cfg.confidence, setup, setup.samples, cfg.holdout_rule, cfg.check_level)
        # A float32 model is drawn on the work copy itself, each draw locked in place and
        # undone after its measure: one copy of the model besides the input [ours].
        in_place = _all_float32(model)
        best: tuple[tuple[bool, float, float], bytes, list[Shuffle], float, float] | None = None
        drawn = 0
        while drawn < cfg.draws or (drawn < cfg.max_draws and best is not None and best[0][0]):
            secret = research_secret(cfg.seed, drawn) if cfg.reproducible else os.urandom(SECRET_BYTES)
            assert len(secret) == SECRET_BYTES
            drawn += 1
            if in_place:
                shuffles = self._shuffle_(setup.work, setup.candidates, secret, undo=False)
                try:
                    loss, after, preds = setup.samples.loss_accuracy_predictions(setup.work)
                finally:
                    self._shuffle_(setup.work, setup.candidates, secret, undo=True)
            else:
                locked, shuffles = self._shuffled(model, setup.candidates, secret)
                loss, after, preds = setup.samples.loss_accuracy_predictions(copy.deepcopy(locked).float())
                del locked
            relabelled, plain = informativeness(preds, targets, num_classes)
            score = (after > needed, relabelled, plain)
            if best is None or score < best[0]:
                best = (score, secret, shuffles, loss, after)
        assert best is not None
        (_, relabelled, _), secret, shuffles, loss, after = best
        if in_place:  # the work copy becomes the locked model (the input's flags and mode below)
            locked = setup.work
            self._shuffle_(locked, setup.candidates, secret, undo=False)
        else:
            locked, _ = self._shuffled(model, setup.candidates, secret)
        if progress is not None:
            n = sum(s.count for s in shuffles)
            progress(LockProgress(1, n, n, after, setup.target, loss, before))
        total = count_parameters(model)
        info: dict[str, Any] = {
            "params_total": total,
            "lock_accuracy_before": before,
            "lock_accuracy_after": after,
            "num_samples": setup.samples.n,
            "reproducible_secret": cfg.reproducible,
        }
        if cfg.reproducible:
            info["insecure"] = INSECURE
        info["draws"] = drawn
        info["relabelled_lock_accuracy"] = relabelled
        key = Key(
            entries=(),
            original_fingerprint=state_fingerprint(model.state_dict()),
            locked_fingerprint=state_fingerprint(locked.state_dict()),
            scheme=self.name,
            config=self.config_dict(),
            info=info,
            created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            shuffles=tuple(shuffles),
            secret=secret,
        )
        report = lock_report(
            self.name,
            key,
            total,
            start=setup.start,
            accuracy_before=before,
            accuracy_after=after,
            target=setup.target,
            num_samples=setup.samples.n,
            rounds=1,
            stopped="shuffled",
            passes=(float(drawn), 0.0),
            check=setup.certify(locked if in_place else copy.deepcopy(locked).float()),
            check_asked=setup.check_asked,
        )
        if in_place:
            for (_, p), (_, q) in zip(locked.named_parameters(), model.named_parameters(), strict=True):
                p.requires_grad_(q.requires_grad)
            locked.train(model.training)
        return LockResult(locked, key, report)

    def _layout(self, numel: int, count: int) -> int:
        """The key's layout of a tensor: 2 (blocked) or 1 (uniform)."""
        blocked = count == numel and is_blocked(numel)
        if self.config.layout == "blocked" and not blocked:
            return 1  # a tensor smaller than two blocks
        wanted = self.config.layout == "blocked" or (self.config.layout == "auto" and numel >= AUTO_BLOCKED)
        return 2 if blocked and wanted else 1

    def _shuffle_(self, model: nn.Module, candidates: Any, secret: bytes, *, undo: bool) -> list[Shuffle]:
        """Locks (``undo``: unlocks) ``model``'s candidate tensors in place by ``secret``."""
        params = dict(model.named_parameters())
        shuffles = []
        for name in candidates:
            p = params[name]
            count = round(self.config.fraction * p.numel())
            if count < 2:
                continue
            s = Shuffle(name, p.numel(), count, self.config.dither, self._layout(p.numel(), count))
            with torch.no_grad():
                flat = p.detach().reshape(-1).clone()
                (s.unlock_ if undo else s.lock_)(flat, secret)
                p.copy_(flat.view_as(p))
            shuffles.append(s)
        return shuffles

    def _shuffled(self, model: nn.Module, candidates: Any, secret: bytes) -> tuple[nn.Module, list[Shuffle]]:
        """A copy of ``model`` with its candidate tensors shuffled by ``secret``."""
        locked = copy.deepcopy(model)
        return locked, self._shuffle_(locked, candidates, secret, undo=False)
