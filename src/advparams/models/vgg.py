"""A VGG-style network with BatchNorm (Simonyan & Zisserman, ICLR 2015; Ioffe & Szegedy, 2015).

Sized for small images (28x28 to 32x32): three blocks of two 3x3 convolutions, each
followed by BatchNorm and ReLU, max-pooling between blocks, then a small classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from advparams.models.registry import MODELS


class VGGSmall(nn.Module):
    """VGG-style net: widths (w, w, M, 2w, 2w, M, 4w, 4w, M), BatchNorm, 2-layer classifier."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, width: int = 32) -> None:
        super().__init__()
        if input_size < 8:
            raise ValueError(f"the VGG-style net needs inputs of at least 8x8, got {input_size}")
        layers: list[nn.Module] = []
        c = in_channels
        for w in (width, width, "M", 2 * width, 2 * width, "M", 4 * width, 4 * width, "M"):
            if w == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, int(w), 3, padding=1, bias=False), nn.BatchNorm2d(int(w)), nn.ReLU()]
                c = int(w)
        self.features = nn.Sequential(*layers)
        side = input_size // 8
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * side * side, 256),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@MODELS.register("vgg")
def vgg(num_classes: int = 10, in_channels: int = 1, input_size: int = 28, width: int = 32) -> VGGSmall:
    """VGG-style net with BatchNorm (about 0.58 M parameters at width 32 on 28x28 inputs)."""
    return VGGSmall(num_classes=num_classes, in_channels=in_channels, input_size=input_size, width=width)
