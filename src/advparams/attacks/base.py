"""The attack family: removal and robustness attacks on protected models.

An attack holds the attacker's resources in its configuration (data fraction, epochs,
optimiser, seed) and gets a model *without its key*. It returns the attacked model(s);
measuring them (accuracy, advantage over a baseline) is the evaluation harness's job,
so the same attack serves locks, watermarks and fingerprints alike.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from torch import nn

from advparams.data.base import DataLike
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


class Attack(Configurable[C], ABC):
    """Base class of attacks; the constructor takes the configuration only.

    Attributes:
        uses_key: True only for attacks that model a leak of (part of) the secret key;
            the harness passes the true key to these and to no other attack.
        uses_data: True when the attack needs the attacker's data (the harness passes
            the training set; the attack takes its configured share of it).
    """

    uses_key: ClassVar[bool] = False
    uses_data: ClassVar[bool] = True

    @abstractmethod
    def run(
        self,
        model: nn.Module,
        data: DataLike,
        *,
        generator: torch.Generator | None = None,
        key: Key | None = None,
    ) -> AttackResult:
        """Attacks a copy of ``model`` with the attacker's ``data``; ``model`` is not changed.

        Args:
            model: the protected model, without its key.
            data: the data the attacker draws from (each attack takes its configured share).
            generator: randomness; default: seeded from the configuration's ``seed``.
            key: the true key, for attacks with ``uses_key`` only; others ignore it.
        """


def reinitialised(model: nn.Module, generator_seed: int) -> nn.Module:
    """A copy of ``model`` with fresh random weights (every ``reset_parameters()`` called).

    The initialisation is drawn under ``torch.random.fork_rng`` seeded with
    ``generator_seed``, so the caller's random state is untouched. BatchNorm running
    statistics are reset too.
    """
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(generator_seed)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters") and callable(module.reset_parameters):
                module.reset_parameters()
            if hasattr(module, "reset_running_stats") and callable(module.reset_running_stats):
                module.reset_running_stats()
    return fresh
