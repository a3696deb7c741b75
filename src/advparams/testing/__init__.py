"""Test helpers shipped with the package: toy models and tiny data, usable by users too."""

from __future__ import annotations

import torch
from torch import nn

from advparams.data.base import ImageDataset
from advparams.data.synthetic import make_synthetic
from advparams.fingerprint import state_equal


class ConstantClassifier(nn.Module):
    """Predicts ``label`` for every input (its accuracy is the label's share of the data)."""

    def __init__(self, num_classes: int, label: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.full((num_classes,), -1.0))
        with torch.no_grad():
            self.bias[label] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(x.shape[0], -1)


class TinyConvNet(nn.Module):
    """A few-hundred-parameter CNN with BatchNorm, a depthwise conv and a linear head."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.head = nn.Linear(8 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.relu(self.depthwise(x))
        x = nn.functional.adaptive_avg_pool2d(x, 4)
        return self.head(x.flatten(1))


class TinyAttentionNet(nn.Module):
    """Patches -> linear embedding -> one self-attention layer -> mean pool -> linear head."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, patch: int = 4, dim: int = 16) -> None:
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(in_channels * patch * patch, dim)
        self.attn = nn.MultiheadAttention(dim, num_heads=2, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, _, _ = x.shape
        p = self.patch
        tokens = x.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 1, 4, 5).reshape(n, -1, c * p * p)
        h = self.embed(tokens)
        a, _ = self.attn(h, h, h, need_weights=False)
        return self.head(self.norm(h + a).mean(1))


def tiny_data(num_samples: int = 600, seed: int = 1, **options: int) -> ImageDataset:
    """A small synthetic 1x16x16, 10-class data set (see :func:`make_synthetic`)."""
    return make_synthetic(num_samples, seed=seed, **options)


def tiny_trained_classifier(
    seed: int = 0, model: nn.Module | None = None, epochs: int = 3
) -> tuple[nn.Module, ImageDataset]:
    """A :class:`TinyConvNet` (or ``model``) trained to near 100% on :func:`tiny_data`.

    Deterministic for a given ``seed``; takes about a second on a CPU.
    """
    from advparams._rng import isolated_seed
    from advparams.training import TrainConfig, train

    data = tiny_data(seed=seed + 1)
    if model is None:
        with isolated_seed(seed):
            model = TinyConvNet()
    with isolated_seed(seed):  # dropout-free here, but training draws nothing else globally
        result = train(
            model,
            data,
            TrainConfig(epochs=epochs, batch_size=32, lr=3e-3),
            generator=torch.Generator().manual_seed(seed),
        )
    return result.model, data


__all__ = [
    "ConstantClassifier",
    "TinyAttentionNet",
    "TinyConvNet",
    "state_equal",
    "tiny_data",
    "tiny_trained_classifier",
]
