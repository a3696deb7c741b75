"""What the attacks on watermarks share: the attacker's images and their normalisation."""

from __future__ import annotations

import torch

from advparams.attacks.base import attacker_indices
from advparams.data.base import DataLike, ImageDataset, all_labels, gather
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


def normalisation(data: DataLike, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(mean, std)`` as ``[C, 1, 1]`` tensors: an :class:`ImageDataset`'s own,
    or 0 and 1 for other data (its inputs are taken as [0, 1] pixels)."""
    if isinstance(data, ImageDataset):
        return torch.tensor(data.mean).view(-1, 1, 1), torch.tensor(data.std).view(-1, 1, 1)
    return torch.zeros(channels, 1, 1), torch.ones(channels, 1, 1)
