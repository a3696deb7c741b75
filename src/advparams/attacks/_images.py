"""What the attacks on watermarks share: the attacker's images (and, from
:mod:`advparams.data.base`, their normalisation)."""

from __future__ import annotations

import torch

from advparams.attacks.base import attacker_indices
from advparams.data.base import DataLike, all_labels, gather, normalisation
from advparams.errors import AdvParamsError


def attacker_images(
    data: DataLike, fraction: float, generator: torch.Generator, attack: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The attacker's class-balanced share of ``data``: ``(indices, images, labels)``.

    Raises:
        AdvParamsError: the inputs are not images ``[N, C, H, W]``.
    """
    idx = attacker_indices(all_labels(data), fraction, generator)
    x, y = gather(data, idx)
    if x.dim() != 4:
        raise AdvParamsError(f"the {attack} attack needs image inputs [N, C, H, W]")
    return idx, x, y


__all__ = ["attacker_images", "normalisation"]
