"""Model architectures, registered by name in :data:`MODELS`.

Each factory takes ``num_classes``, ``in_channels`` and ``input_size`` (square inputs)
plus its own options, and returns a fresh, randomly initialised ``nn.Module``. Seed the
initialisation by calling ``torch.manual_seed`` in your script, or pass ``seed`` to
:func:`build_model` (drawn under :func:`advparams._rng.isolated_seed`, so the caller's RNG
is untouched).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from advparams._rng import isolated_seed
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

from advparams.models import lenet, resnet, vgg  # noqa: E402,F401  (registers the models)


def build_model(name: str, options: dict[str, Any] | None = None, *, seed: int | None = None) -> nn.Module:
    """Builds registered model ``name`` with ``options``.

    Args:
        name: a name from :func:`list_models`.
        options: keyword arguments of the factory (``num_classes``, ``in_channels``, ...).
        seed: when given, the initial weights are drawn under ``torch.random.fork_rng``
            seeded with it, so the result is reproducible without touching global RNG state.
    """
    if seed is None:
        return MODELS.build(name, options)
    with isolated_seed(seed):
        return MODELS.build(name, options)


def list_models() -> list[str]:
    """Names of the registered models."""
    return MODELS.names()


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "build_model", "count_parameters", "list_models"]
