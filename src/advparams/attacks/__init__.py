"""Attacks on protected models: removal and robustness attacks, registered in :data:`ATTACKS`."""

from advparams.attacks.base import ATTACKS, Attack, AttackResult, reinitialised
from advparams.attacks.finetune import FineTune, FineTuneConfig, attacker_indices
from advparams.attacks.prune import Prune, PruneConfig, magnitude_prune, smallest_magnitude_mask


def list_attacks() -> list[str]:
    """Names of the registered attacks."""
    return ATTACKS.names()


__all__ = [
    "ATTACKS",
    "Attack",
    "AttackResult",
    "FineTune",
    "FineTuneConfig",
    "Prune",
    "PruneConfig",
    "attacker_indices",
    "list_attacks",
    "magnitude_prune",
    "reinitialised",
    "smallest_magnitude_mask",
]
