"""Bounds on an evaluation config's counts, sizes and strengths: generous, but finite, so
that no value a config can hold makes a run's work or memory grow without end. Every
bound is checked when the config is read, before any work starts; ``docs/evaluation.md``
lists them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from advparams.errors import ConfigError
from advparams.imaging import STRENGTH_LIMITS

MAX_SEEDS = 100
"""Seeds of a run (each trains, locks and attacks a model)."""
MAX_BUDGETS = 100
"""Budgets of the accuracy-against-size curve (each a lock per scheme and seed)."""
MAX_SETTINGS = 1000
"""Settings of one attack entry: its grid's combinations, or its cases."""
MAX_SAMPLES = 10**8
"""``train_samples`` and ``test_samples`` (of the run and of tracing's models)."""
MAX_EPOCHS = 1000
"""Training epochs (``train.epochs``, ``tracing.models[].train.epochs``)."""
MAX_BATCH_SIZE = 65536
"""Training batch size."""
MAX_MODEL_PARAMETERS = 10**9
"""Parameters of any architecture the config builds (4 GB in float32), counted on the
meta device before anything is allocated."""
MAX_ASR_SAMPLES = 10**6
"""``backdoors.asr_samples``."""
MAX_STRENGTHS = 100
"""Strengths of one transformation in ``backdoors.transformations``."""
MARK_SHARE = 0.5
"""``tracing.mark.positions`` may be at most this share of the weights a model's
hardened lock moves and the mark may use: the positions are drawn at random among them,
and a plan that asks for nearly all of them would need ever more draws to find the last."""

TRANSFORMATION_LIMITS = STRENGTH_LIMITS
"""The largest strength of each physical transformation (:data:`advparams.imaging.STRENGTH_LIMITS`)."""


def combined_limit() -> float:
    """The largest ``combined`` strength: every range it scales (PTB's training ranges)
    stays within its own transformation's limit."""
    from advparams.backdoors.ptb import PTBConfig

    ranges = PTBConfig().ranges()
    return min(TRANSFORMATION_LIMITS[k] / v for k, v in ranges.items() if v > 0)


def check_strength(kind: str, strength: float, what: str) -> None:
    """Refuses a strength of transformation ``kind`` (or ``combined``) outside ``(0, limit]``."""
    top = combined_limit() if kind == "combined" else TRANSFORMATION_LIMITS[kind]
    if not 0 < strength <= top:
        raise ConfigError(f"{what} must be a list of strengths in (0, {top:g}], got {strength!r}")


def check_train(train: Any, what: str) -> None:
    """Refuses training options (a :class:`~advparams.training.TrainConfig`) beyond the bounds."""
    if train.epochs > MAX_EPOCHS:
        raise ConfigError(f"{what}.epochs must be at most {MAX_EPOCHS}, got {train.epochs}")
    if train.batch_size > MAX_BATCH_SIZE:
        raise ConfigError(f"{what}.batch_size must be at most {MAX_BATCH_SIZE}, got {train.batch_size}")


def check_settings(grid: Mapping[str, tuple[Any, ...]], cases: tuple[Any, ...], what: str) -> None:
    """Refuses an attack entry with more than :data:`MAX_SETTINGS` settings (counted
    without listing them)."""
    count = len(cases)
    if not cases:
        count = 1
        for values in grid.values():
            count *= len(values)
            if count > MAX_SETTINGS:
                break
    if count > MAX_SETTINGS:
        kind = "cases" if cases else "grid combinations"
        raise ConfigError(f"{what} has more than {MAX_SETTINGS} settings ({kind}); split it or use fewer values")


__all__ = [
    "MARK_SHARE",
    "MAX_ASR_SAMPLES",
    "MAX_BATCH_SIZE",
    "MAX_BUDGETS",
    "MAX_EPOCHS",
    "MAX_MODEL_PARAMETERS",
    "MAX_SAMPLES",
    "MAX_SEEDS",
    "MAX_SETTINGS",
    "MAX_STRENGTHS",
    "TRANSFORMATION_LIMITS",
    "check_settings",
    "check_strength",
    "check_train",
    "combined_limit",
]
