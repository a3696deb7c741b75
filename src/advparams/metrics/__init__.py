"""Metrics as pure functions of a model and data."""

from advparams.metrics.accuracy import accuracy, chance_level, predict

__all__ = ["accuracy", "chance_level", "predict"]
