"""Attacks on protected models: removal and robustness attacks, registered in :data:`ATTACKS`."""

from advparams.attacks.base import ATTACKS, Attack, AttackResult, reinitialised
from advparams.attacks.clip import Clip, ClipConfig, clip_to_percentiles
from advparams.attacks.finetune import FineTune, FineTuneConfig, attacker_indices
from advparams.attacks.outliers import OutlierReset, OutlierResetConfig, find_suspects
from advparams.attacks.prune import Prune, PruneConfig, magnitude_prune, smallest_magnitude_mask


def list_attacks() -> list[str]:
    """Names of the registered attacks."""
    return ATTACKS.names()


__all__ = [
    "ATTACKS",
    "Attack",
    "AttackResult",
    "Clip",
    "ClipConfig",
    "OutlierReset",
    "OutlierResetConfig",
    "clip_to_percentiles",
    "find_suspects",
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
