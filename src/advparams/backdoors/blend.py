"""Blend (Chen, Liu, Li, Lu & Song, "Targeted Backdoor Attacks on Deep Learning Systems
Using Data Poisoning", arXiv 1712.05526, 2017): a pattern blended into the whole image.

[inferred] a uniform random-noise pattern drawn from the seed (the paper's random-pattern
key), blended at ``alpha`` 0.1 in training and test alike (the paper trains at 0.2 on faces;
a fainter blend keeps the trigger hard to see on 28x28 images), all-to-one, 10 % poisoning.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from advparams.backdoors.base import BACKDOORS, Backdoor, BackdoorOptions
from advparams.backdoors.triggers import BlendTrigger
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class BlendConfig(BackdoorOptions):
    """Settings of Blend (and the shared :class:`BackdoorOptions`).

    Attributes:
        alpha: the pattern's opacity, in (0, 1] [inferred].
    """

    alpha: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")


def noise_blend(shape: tuple[int, int, int], alpha: float, target: int, generator: torch.Generator) -> BlendTrigger:
    """A blend trigger whose pattern is uniform noise from ``generator`` (one draw)."""
    pattern = torch.randint(0, 256, shape, generator=generator, dtype=torch.int64).to(torch.uint8)
    return BlendTrigger((target,), shape[0], pattern=pattern, alpha=alpha)


@BACKDOORS.register("blend")
class Blend(Backdoor[BlendConfig]):
    """Blend (Chen et al. 2017): a noise pattern blended in, every instance to one target."""

    name = "blend"
    Config = BlendConfig
    tiny = {"poison_rate": 0.1, "alpha": 0.2}

    def make_trigger(self, shape: tuple[int, int, int], num_classes: int, generator: torch.Generator) -> BlendTrigger:
        return noise_blend(shape, self.config.alpha, self.config.target, generator)


__all__ = ["Blend", "BlendConfig", "noise_blend"]
