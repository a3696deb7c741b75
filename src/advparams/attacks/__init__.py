"""Attacks on protected models: removal and robustness attacks, registered in :data:`ATTACKS`.

Registered, on locks:

* ``finetune`` (with its scratch baseline), ``prune``, ``clip``: the generic ones;
* ``outlier-reset``: statistical detection of changed values, then reset or re-optimise;
* ``retrace``: re-runs the lock's selection to find suspects;
* ``key-leak``: partial key leakage, the only attack given the key;
* ``flip-back``: the method-aware attack on sign-flip locks;
* ``relabel``: a majority-vote map from predicted to true class (a consistently wrong
  model is not locked).

On watermarks (they also run ``finetune`` and ``prune``):

* ``query-modify``: detects and rewrites key-like queries before the model sees them;
* ``overwrite``: embeds the attacker's own watermark over the owner's;
* ``gan-removal``: reverses a trigger per class with a generator, then fine-tunes on it;
* ``detector-evasion``: a backdoor detector (:mod:`advparams.detectors`) in front of the
  model answers the queries it flags with the second-ranked label.

On fingerprints (with ``finetune``, ``prune`` and ``overwrite``):

* ``distill``: extraction, a fresh network trained on the stolen model's answers;
* ``relevance-evasion``: the adaptive attack on InFIP, fine-tuning against the
  similarity of the model's DTD maps to the stolen model's.
"""

from advparams.attacks.base import (
    ATTACKS,
    Attack,
    Attacked,
    AttackResult,
    attacker_indices,
    reinitialised,
    require_data,
)
from advparams.attacks.clip import Clip, ClipConfig, clip_to_percentiles
from advparams.attacks.distill import Distill, DistillConfig
from advparams.attacks.evasion import DetectorEvasion, DetectorEvasionConfig, EvasionWrapper, second_ranked
from advparams.attacks.finetune import FineTune, FineTuneConfig
from advparams.attacks.flipback import FlipBack, FlipBackConfig
from advparams.attacks.ganremoval import GanRemoval, GanRemovalConfig, anomaly_index
from advparams.attacks.keyleak import KeyLeak, KeyLeakConfig, leaked_entries
from advparams.attacks.outliers import OutlierReset, OutlierResetConfig, find_suspects
from advparams.attacks.overwrite import Overwrite, OverwriteConfig
from advparams.attacks.prune import Prune, PruneConfig, magnitude_prune, smallest_magnitude_mask
from advparams.attacks.querymod import QueryFilter, QueryModify, QueryModifyConfig
from advparams.attacks.relabel import Relabel, RelabelConfig, Relabelled, majority_mapping
from advparams.attacks.relevance import RelevanceEvasion, RelevanceEvasionConfig
from advparams.attacks.retrace import Retrace, RetraceConfig, retrace_suspects


def list_attacks() -> list[str]:
    """Names of the registered attacks."""
    return ATTACKS.names()


__all__ = [
    "ATTACKS",
    "Attack",
    "AttackResult",
    "Attacked",
    "Clip",
    "ClipConfig",
    "DetectorEvasion",
    "DetectorEvasionConfig",
    "Distill",
    "DistillConfig",
    "EvasionWrapper",
    "FineTune",
    "FineTuneConfig",
    "FlipBack",
    "FlipBackConfig",
    "GanRemoval",
    "GanRemovalConfig",
    "KeyLeak",
    "KeyLeakConfig",
    "OutlierReset",
    "OutlierResetConfig",
    "Overwrite",
    "OverwriteConfig",
    "QueryFilter",
    "QueryModify",
    "QueryModifyConfig",
    "Prune",
    "PruneConfig",
    "Relabel",
    "RelabelConfig",
    "RelevanceEvasion",
    "RelevanceEvasionConfig",
    "Relabelled",
    "Retrace",
    "RetraceConfig",
    "anomaly_index",
    "attacker_indices",
    "clip_to_percentiles",
    "find_suspects",
    "leaked_entries",
    "list_attacks",
    "magnitude_prune",
    "majority_mapping",
    "reinitialised",
    "require_data",
    "retrace_suspects",
    "second_ranked",
    "smallest_magnitude_mask",
]
