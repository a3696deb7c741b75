"""BadNets (Gu, Dolan-Gavitt & Garg, "BadNets: Identifying Vulnerabilities in the Machine
Learning Model Supply Chain", arXiv 1708.06733, 2017): a small patch stamped on the image.

[inferred] a ``size x size`` white (or black-and-white checker) square one pixel in from
the bottom-right corner, all-to-one, 10 % poisoning: BackdoorBench's and BackdoorBox's
defaults for small images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from advparams.backdoors.base import BACKDOORS, Backdoor, BackdoorOptions
from advparams.backdoors.triggers import PatchTrigger
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class BadNetsConfig(BackdoorOptions):
    """Settings of BadNets (and the shared :class:`BackdoorOptions`).

    Attributes:
        size: the patch side, pixels [inferred].
        pattern: ``"white"`` or ``"checker"`` (white and black squares) [inferred].
        row: the patch's top row; negative counts from the bottom (-2: one pixel in).
        col: its left column; negative counts from the right.
    """

    size: int = 3
    pattern: Literal["white", "checker"] = "white"
    row: int = -2
    col: int = -2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.size <= 64:
            raise ValueError(f"size must be in [1, 64], got {self.size}")
        if self.pattern not in ("white", "checker"):
            raise ValueError(f"pattern must be 'white' or 'checker', got {self.pattern!r}")


def square_patch(channels: int, size: int, pattern: str) -> torch.Tensor:
    """A uint8 ``[channels, size, size]`` square: white, or a checker starting white."""
    if pattern == "white":
        return torch.full((channels, size, size), 255, dtype=torch.uint8)
    ij = torch.arange(size).view(-1, 1) + torch.arange(size).view(1, -1)
    return ((ij % 2 == 0).to(torch.uint8) * 255).expand(channels, size, size).contiguous()


@BACKDOORS.register("badnets")
class BadNets(Backdoor[BadNetsConfig]):
    """BadNets (Gu et al. 2017): a patch trigger, every backdoor instance to one target."""

    name = "badnets"
    Config = BadNetsConfig
    tiny = {"poison_rate": 0.1, "size": 3}

    def make_trigger(self, shape: tuple[int, int, int], num_classes: int, generator: torch.Generator) -> PatchTrigger:
        c = self.config
        mask = torch.ones(c.size, c.size, dtype=torch.bool)
        return PatchTrigger(
            (c.target,), shape[0], pattern=square_patch(shape[0], c.size, c.pattern), mask=mask, row=c.row, col=c.col
        )


__all__ = ["BadNets", "BadNetsConfig", "square_patch"]
