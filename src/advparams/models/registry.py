"""The registry of model architectures, :data:`MODELS` (each module of
:mod:`advparams.models` registers its own; :mod:`advparams.models` re-exports it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from advparams.errors import ConfigError
from advparams.registry import Registry

SHAPE_LIMITS = {"num_classes": 1_000_000, "in_channels": 4096, "input_size": 65536}
"""Bounds of the arguments every factory takes, checked before any factory runs."""


class ModelRegistry(Registry[Any]):
    """The registry of architectures: :meth:`build` first checks the arguments every
    factory shares (:data:`SHAPE_LIMITS`), so a checkpoint or config with 0 classes is one
    clear error, not torch's warnings and a shape mismatch."""

    def build(self, name: str, options: Mapping[str, Any] | None = None) -> Any:
        for key, top in SHAPE_LIMITS.items():
            value = (options or {}).get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ConfigError(f"model {name!r}: {key} must be an integer in [1, {top}], got {str(value)[:40]}")
        return super().build(name, options)


MODELS: Registry[Any] = ModelRegistry(
    "model",
    hint="for an architecture of your own, register it with @advparams.models.MODELS.register(NAME) "
    "in a module or .py file and pass --import MODULE_OR_FILE (or set ADVPARAMS_IMPORT, or declare an "
    "'advparams.models' entry point); see docs/models.md",
)


__all__ = ["MODELS", "SHAPE_LIMITS", "ModelRegistry"]
