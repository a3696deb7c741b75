"""The attack family: removal and robustness attacks on protected models.

An attack holds the attacker's resources in its configuration (data fraction, epochs,
optimiser, seed) and gets a model *without its key*. It returns the attacked model(s);
measuring them (accuracy, advantage over a baseline) is the evaluation harness's job,
so the same attack serves locks, watermarks and fingerprints alike.
"""

from __future__ import annotations

import copy
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from torch import nn

from advparams._rng import isolated_seed
from advparams.data.base import DataLike, balanced_indices
from advparams.errors import AdvParamsError
from advparams.registry import Configurable, Registry

if TYPE_CHECKING:
    from advparams.keys.key import Key

C = TypeVar("C")

ATTACKS: Registry[Any] = Registry("attack")


@dataclass
class AttackResult:
    """What an attack produced.

    Attributes:
        attack: registry name of the attack.
        model: the attacked model (a new object; the input is not changed).
        baselines: other models the attack made for comparison (e.g. ``"scratch"``).
        info: JSON-ready facts (samples used, parameters zeroed, ...).
        seconds: wall-clock time of the attack.
    """

    attack: str
    model: nn.Module
    baselines: dict[str, nn.Module] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Attacked:
    """What :meth:`Attack.attack` returns; :meth:`Attack.run` adds the name and the time."""

    model: nn.Module
    baselines: dict[str, nn.Module] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class Attack(Configurable[C], ABC):
    """Base class of attacks; the constructor takes the configuration only.

    :meth:`run` is the one verb. It holds what every attack shares (the default generator
    from the configuration's ``seed``, who gets the key and the data, the timing) and
    calls :meth:`attack`, which subclasses implement.

    Attributes:
        uses_key: True only for attacks that model a leak of (part of) the secret key;
            only these are given the key, and they refuse to run without it.
        uses_data: True when the attack may use the attacker's data (it takes its
            configured share); data-free attacks are given ``None``.
        scratch_baseline: its configuration has a ``scratch`` option that also runs the
            same attack from a freshly initialised net on the same samples (returned in
            ``AttackResult.baselines["scratch"]``); an evaluation measures it once per
            seed and setting, and never for watermarks.
        reports_suspects: it guesses which values the lock changed and returns them in
            ``info["suspects"]`` (``{tensor name: flat indices}``), so an evaluation can
            score the guess against the true key.
        filters_queries: the attacked "model" is a query filter in front of the stolen
            model, with a ``flagged(x)`` method that says which queries it caught.
        attacks_copies: it also makes sense against a user's unlocked copy, to wash out
            the marks that name its holder (the tracing study offers it; a
            ``scratch_baseline`` attack runs there without its scratch model).
    """

    uses_key: ClassVar[bool] = False
    uses_data: ClassVar[bool] = True
    scratch_baseline: ClassVar[bool] = False
    reports_suspects: ClassVar[bool] = False
    filters_queries: ClassVar[bool] = False
    attacks_copies: ClassVar[bool] = False

    def run(
        self,
        model: nn.Module,
        data: DataLike | None,
        *,
        generator: torch.Generator | None = None,
        key: Key | None = None,
    ) -> AttackResult:
        """Attacks a copy of ``model`` with the attacker's ``data``; ``model`` is not changed.

        Args:
            model: the protected model, without its key.
            data: the data the attacker draws from (each attack takes its configured
                share); ignored by data-free attacks.
            generator: randomness; default: seeded from the configuration's ``seed``.
            key: the true key, for attacks with ``uses_key`` only; others never see it.

        Raises:
            AdvParamsError: a key attack without the key, or an attack that needs data
                without it.
        """
        if self.uses_key and key is None:
            raise AdvParamsError(f"the {self.name} attack needs the true key (key=...)")
        start = time.perf_counter()
        seed = int(getattr(self.config, "seed", 0))
        gen = generator if generator is not None else torch.Generator().manual_seed(seed)
        out = self.attack(model, data if self.uses_data else None, gen, key if self.uses_key else None)
        return AttackResult(self.name, out.model, out.baselines, out.info, time.perf_counter() - start)

    @abstractmethod
    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """The attack itself, on a copy of ``model`` (see :meth:`run`)."""


def require_data(data: DataLike | None, attack: str) -> DataLike:
    """``data``, or one clear error when an attack that needs it got none."""
    if data is None:
        raise AdvParamsError(f"the {attack} attack needs the attacker's data")
    return data


def fresh_copy(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """:func:`reinitialised` with a seed drawn from ``generator``: the starting point of an
    attack's ``scratch`` baseline (the same attack from a network that knows nothing)."""
    return reinitialised(model, int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))


def reinitialised(model: nn.Module, generator_seed: int) -> nn.Module:
    """A copy of ``model`` with fresh random weights (every ``reset_parameters()`` called;
    a ``transformers`` model is initialised as its class does, ``_init_weights`` on every
    module, which also draws the parameters no ``reset_parameters`` covers, such as a
    ViT's class token and position embeddings).

    The initialisation is drawn under ``torch.random.fork_rng`` seeded with
    ``generator_seed``, so the caller's random state is untouched. BatchNorm running
    statistics are reset too.
    """
    fresh = copy.deepcopy(model)
    init = getattr(fresh, "_init_weights", None)
    with isolated_seed(generator_seed):
        if callable(init) and hasattr(fresh, "config"):  # a transformers model: its own initialisation
            for module in fresh.modules():
                init(module)
            return fresh
        for module in fresh.modules():
            if hasattr(module, "reset_parameters") and callable(module.reset_parameters):
                module.reset_parameters()
            if hasattr(module, "reset_running_stats") and callable(module.reset_running_stats):
                module.reset_running_stats()
    return fresh


def attacker_indices(labels: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """The attacker's samples: ``round(fraction * N)`` (at least 1), class-balanced; every
    attack that trains on the attacker's share of the data draws it here."""
    n = max(1, round(fraction * int(labels.shape[0])))
    return balanced_indices(labels, n, generator)
