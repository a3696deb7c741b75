"""Metrics as pure functions of a model and data."""

from advparams.metrics.accuracy import accuracy, chance_level, predict
from advparams.metrics.detection import detection_scores

__all__ = ["accuracy", "chance_level", "detection_scores", "predict"]
