"""LeNet-5 (LeCun et al., Proc. IEEE 1998), in its common modern form (ReLU, max-pool)."""

from __future__ import annotations

import torch
from torch import nn

from advparams.models.registry import MODELS


class LeNet5(nn.Module):
    """LeNet-5: conv(6, 5x5, pad 2) - pool - conv(16, 5x5) - pool - fc120 - fc84 - fc.

    On 28x28 single-channel inputs with 10 classes it has 61,706 parameters.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> None:
        super().__init__()
        if input_size < 12:
            raise ValueError(f"LeNet-5 needs inputs of at least 12x12, got {input_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = ((input_size // 2) - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@MODELS.register("lenet")
def lenet(num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> LeNet5:
    """LeNet-5 (61,706 parameters on Fashion-MNIST)."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
