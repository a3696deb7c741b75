"""The colour task derived from Fashion-MNIST."""

from __future__ import annotations

import torch

from advparams.data import DATASETS
from advparams.data.colour_fashion_mnist import colourise, palette


def test_colourise_pads_colours_and_keeps_the_shape_of_the_garment() -> None:
    grey = torch.zeros(50, 1, 28, 28, dtype=torch.uint8)
    grey[:, :, 8:20, 10:18] = 255  # a garment, fully opaque
    out = colourise(grey, seed=3)
    assert out.shape == (50, 3, 32, 32) and out.dtype == torch.uint8
    pal = palette().round()
    fg, bg = out[:, :, 10, 12].float(), out[:, :, 0, 0].float()  # inside the garment, in the padding
    for i in range(50):
        assert (pal - fg[i]).abs().max(1).values.min() <= 0.5  # a palette colour
        assert (pal - bg[i]).abs().max(1).values.min() <= 0.5
        assert not torch.equal(fg[i], bg[i])  # garment and background differ
    assert (out[:, 0] != out[:, 1]).any() and (out[:, 1] != out[:, 2]).any()  # the channels differ
    assert torch.equal(out, colourise(grey, seed=3))
    assert not torch.equal(out, colourise(grey, seed=4))
    assert int(out.min()) >= 30 and int(out.max()) <= 225


def test_registered_as_what_it_is() -> None:
    spec = DATASETS.get("fashion-mnist-colour")
    assert (spec.in_channels, spec.input_size, spec.num_classes) == (3, 32, 10)
    assert "derived from Fashion-MNIST" in spec.description and "not CIFAR-10" in spec.description
