"""ResNet-18, CIFAR variant (He et al., CVPR 2016): 3x3 stem, no initial max-pool."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advparams.models.registry import MODELS


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for small images (11.17 M parameters at width 64, 10 classes, 3 channels)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 32, width: int = 64) -> None:
        super().__init__()
        del input_size  # global average pooling makes the net size-agnostic
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        cin = width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            stride = 1 if i == 0 else 2
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


@MODELS.register("resnet18")
def resnet18(num_classes: int = 10, in_channels: int = 3, input_size: int = 32, width: int = 64) -> ResNet18:
    """CIFAR-style ResNet-18."""
    return ResNet18(num_classes=num_classes, in_channels=in_channels, input_size=input_size, width=width)
