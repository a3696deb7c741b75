"""Model architectures, registered by name in :data:`MODELS`.

Each factory takes ``num_classes``, ``in_channels`` and ``input_size`` (square inputs)
plus its own options, and returns a fresh, randomly initialised ``nn.Module``. Seed the
initialisation by calling ``torch.manual_seed`` in your script, or pass ``seed`` to
:func:`build_model` (drawn under :func:`advparams._rng.isolated_seed`, so the caller's RNG
is untouched).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from advparams._rng import isolated_seed
from advparams.models import lenet, resnet, transformers, vgg  # noqa: F401  (registers the models)
from advparams.models.registry import MODELS, SHAPE_LIMITS, ModelRegistry


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


__all__ = ["MODELS", "SHAPE_LIMITS", "ModelRegistry", "build_model", "count_parameters", "list_models"]
