"""``fashion-mnist-colour``: real Fashion-MNIST garments coloured per image, 3x32x32.

No colour classification data set can be had on machines without internet access, so
this colour task is *derived* from Fashion-MNIST and named for what it is (it is not
CIFAR-10): each 28x28 grey image is padded to 32x32 and used as the opacity of a garment
colour over a background colour, both drawn per image from a fixed palette of 12
colours (``garment = background + (colour - background) * grey / 255``), so the three
channels differ from image to image while the label stays the garment's. Colours lie in
[30, 225], away from 0 and 255, so that triggers hidden in any channel are not clipped.
The palette and the draws are seeded (the same images on every machine); train and
test draw from different seeds.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from advparams.data.base import DATASETS, DatasetSpec, ImageDataset
from advparams.data.fashion_mnist import load as load_grey

PALETTE_SEED = 20211
SPLIT_SEEDS = {"train": 1, "test": 2}
PALETTE_SIZE = 12
SIZE = 32
# Per-channel mean and std of the [0, 1]-scaled training images (measured once on the
# 60,000 training images; train and test share them).
MEAN = (0.5721, 0.5151, 0.4227)
STD = (0.1770, 0.2342, 0.2149)


def palette(seed: int = PALETTE_SEED, size: int = PALETTE_SIZE) -> torch.Tensor:
    """``size`` RGB colours ``[size, 3]`` (float, 30-225), from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return 30 + torch.rand(size, 3, generator=g) * 195


def colourise(grey: torch.Tensor, *, seed: int, colours: torch.Tensor | None = None) -> torch.Tensor:
    """Coloured copies of grey uint8 images ``[N, 1, H, W]`` (padded to at least 32x32).

    Args:
        grey: uint8 ``[N, 1, H, W]``; their grey level is the garment's opacity.
        seed: seeds the per-image choice of garment and background colour.
        colours: the palette (default :func:`palette`).

    Returns:
        uint8 ``[N, 3, max(H, 32), max(W, 32)]``.
    """
    pal = palette() if colours is None else colours
    n, _, h, w = grey.shape
    ph, pw = max(0, SIZE - h), max(0, SIZE - w)
    alpha = F.pad(grey.float() / 255.0, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    g = torch.Generator().manual_seed(seed)
    fg_idx = torch.randint(0, len(pal), (n,), generator=g)
    # The background differs from the garment: a non-zero offset into the palette.
    bg_idx = (fg_idx + torch.randint(1, len(pal), (n,), generator=g)) % len(pal)
    fg, bg = pal[fg_idx].view(n, 3, 1, 1), pal[bg_idx].view(n, 3, 1, 1)
    return (bg + (fg - bg) * alpha).round().clamp(0, 255).to(torch.uint8)


def load(split: str, root: Path | None) -> ImageDataset:
    """The coloured ``split`` of Fashion-MNIST (the grey files are found as Fashion-MNIST's)."""
    grey = load_grey(split, root)
    images = colourise(grey.images, seed=SPLIT_SEEDS[split])
    return ImageDataset(images, grey.labels, mean=MEAN, std=STD, num_classes=10, name="fashion-mnist-colour")


DATASETS.register("fashion-mnist-colour")(
    DatasetSpec(
        name="fashion-mnist-colour",
        num_classes=10,
        in_channels=3,
        input_size=SIZE,
        loader=load,
        needs_root=False,
        description="colour task derived from Fashion-MNIST: garments and backgrounds coloured per image, "
        "3x32x32, 10 classes (not CIFAR-10)",
    )
)
