"""Metrics as pure functions of a model and data."""

from advparams.metrics.accuracy import accuracy, chance_level, predict
from advparams.metrics.detection import detection_scores
from advparams.metrics.stealth import ks_2samp, stealth_summary, tensor_stealth, value_stealth

__all__ = [
    "accuracy",
    "chance_level",
    "detection_scores",
    "ks_2samp",
    "predict",
    "stealth_summary",
    "tensor_stealth",
    "value_stealth",
]
