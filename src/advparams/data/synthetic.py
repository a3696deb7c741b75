"""A tiny generated classification set for fast tests and examples.

Each class has a fixed random template; a sample is its class template plus Gaussian
pixel noise. Templates depend only on ``template_seed``, so train and test splits share
them while their noise differs. A small net learns it in about a second.
"""

from __future__ import annotations

from pathlib import Path

import torch

from advparams.data.base import DATASETS, DatasetSpec, ImageDataset

NUM_CLASSES = 10
SIZE = 16
COUNTS = {"train": 2000, "test": 500}


def make_synthetic(
    num_samples: int,
    *,
    num_classes: int = NUM_CLASSES,
    in_channels: int = 1,
    input_size: int = SIZE,
    noise: float = 40.0,
    template_seed: int = 0,
    seed: int = 1,
) -> ImageDataset:
    """Generates ``num_samples`` samples, classes in turn (balanced).

    Args:
        num_samples: number of samples.
        num_classes: number of classes.
        in_channels: channels per image.
        input_size: image side in pixels.
        noise: standard deviation of the pixel noise, in grey levels (0-255).
        template_seed: seed of the class templates (shared across splits).
        seed: seed of the noise.
    """
    g = torch.Generator().manual_seed(template_seed)
    templates = torch.rand(num_classes, in_channels, input_size, input_size, generator=g) * 255
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_samples) % num_classes
    x = templates[labels] + noise * torch.randn(num_samples, in_channels, input_size, input_size, generator=g)
    images = x.round().clamp(0, 255).to(torch.uint8)
    mean, std = (0.5,) * in_channels, (0.3,) * in_channels
    return ImageDataset(images, labels, mean=mean, std=std, num_classes=num_classes, name="synthetic")


def load(split: str, root: Path | None) -> ImageDataset:
    """The registered ``synthetic`` set: 2,000 train / 500 test, 1x16x16, 10 classes."""
    del root
    return make_synthetic(COUNTS[split], seed=1 if split == "train" else 2)


DATASETS.register("synthetic")(
    DatasetSpec(
        name="synthetic",
        num_classes=NUM_CLASSES,
        in_channels=1,
        input_size=SIZE,
        loader=load,
        needs_root=False,
        description="generated 16x16 grey templates plus noise, 10 classes (tests, examples)",
    )
)
