"""PTB, physical transformations for backdoors (Xue, He, Wu, Sun, Zhang, Wang & Liu,
Computers & Security 2022): the backdoor instances go through random physical
transformations anew in every training epoch, so the backdoor survives the conditions a
trigger meets in the physical world; 0.5 % poisoning.

No camera or face set can be had here, so "physical" is simulated (a digital-physical
proxy, as in EOT): a sticker (square or triangle) is pasted, then the whole image goes
through the transformations of :mod:`advparams.imaging` at strengths drawn up to the
ranges below. Measured under *held-out* transformations: other draws, and strengths
beyond the training ranges. With ``physical: false`` the same sticker is trained without
the transformations (the paper's "without PTB"). [inferred] the sticker, its colour,
size and place, the transformation set and every range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from advparams.backdoors.base import BACKDOORS, Backdoor, BackdoorOptions
from advparams.backdoors.poison import PoisonPlan, apply_each
from advparams.backdoors.triggers import PatchTrigger, Trigger
from advparams.imaging import STRENGTH_LIMITS, random_physical
from advparams.registry import validated

STICKER_RGB = (255, 210, 0)
"""The sticker's colour on colour images (yellow; white on grey images) [inferred]."""


@dataclass(frozen=True)
@validated
class PTBConfig(BackdoorOptions):
    """Settings of PTB (and :class:`BackdoorOptions`); each transformation's training range
    is the largest strength drawn (see :mod:`advparams.imaging` for the units).

    Attributes:
        physical: apply the physical transformations (False: the same trigger without PTB).
        sticker: ``"square"`` or ``"triangle"``.
        size: the sticker's side, pixels.
        row: its top row (negative: from the bottom).
        col: its left column (negative: from the right).
        rotation: degrees.
        scale: zoom ``1 +- scale``.
        perspective: corner shift, share of the side.
        blur: Gaussian sigma, pixels.
        brightness_contrast: factor ``1 +- value``.
        noise: std, grey levels.
        colour_shift: print-and-capture colour shift.
    """

    poison_rate: float = 0.005
    physical: bool = True
    sticker: Literal["square", "triangle"] = "square"
    size: int = 6
    row: int = -3
    col: int = -3
    rotation: float = 10.0
    scale: float = 0.1
    perspective: float = 0.05
    blur: float = 0.8
    brightness_contrast: float = 0.2
    noise: float = 6.0
    colour_shift: float = 0.15

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sticker not in ("square", "triangle"):
            raise ValueError(f"sticker must be 'square' or 'triangle', got {self.sticker!r}")
        if not 2 <= self.size <= 64:
            raise ValueError(f"size must be in [2, 64], got {self.size}")
        for name, value in self.ranges().items():
            top = STRENGTH_LIMITS[name]
            if not 0.0 <= value <= top:  # a blur of 1000 would take gigabytes for a few small images
                raise ValueError(f"{name.replace('-', '_')} must be in [0, {top:g}], got {value}")

    def ranges(self) -> dict[str, float]:
        """The transformation ranges by :data:`advparams.imaging.TRANSFORMATIONS` name."""
        return {
            "rotation": self.rotation,
            "scale": self.scale,
            "perspective": self.perspective,
            "blur": self.blur,
            "brightness-contrast": self.brightness_contrast,
            "noise": self.noise,
            "colour-shift": self.colour_shift,
        }


def sticker_mask(shape: str, size: int) -> torch.Tensor:
    """A bool ``[size, size]`` mask: a full square, or an upright triangle."""
    if shape == "square":
        return torch.ones(size, size, dtype=torch.bool)
    i = torch.arange(size, dtype=torch.float64).view(-1, 1)
    j = torch.arange(size, dtype=torch.float64).view(1, -1)
    return (j - (size - 1) / 2).abs() <= (i + 1) / 2


@BACKDOORS.register("ptb")
class PTB(Backdoor[PTBConfig]):
    """PTB (Xue et al. 2022): a sticker trigger trained under random physical transformations."""

    name = "ptb"
    Config = PTBConfig
    survives = ("physical",)

    @classmethod
    def paper_figure(cls, options: Mapping[str, Any]) -> str:
        rate = "" if options.get("poison_rate", 0.005) == 0.005 else "; the paper poisons 0.5 % only"
        if options.get("physical", True):
            return f"82 % ASR under physical conditions at 0.5 % poisoning (VGGFace){rate}"
        return f"under 11 % ASR under physical conditions (without PTB, VGGFace){rate}"

    @classmethod
    def robust_to(cls, condition: str, options: Mapping[str, Any]) -> bool:
        return condition == "physical" and bool(options.get("physical", True))  # physical: false is its twin

    tiny = {"poison_rate": 0.1, "size": 4, "row": -2, "col": -2}

    @property
    def fresh_each_epoch(self) -> bool:  # type: ignore[override]
        return self.config.physical

    def make_trigger(self, shape: tuple[int, int, int], num_classes: int, generator: torch.Generator) -> Trigger:
        c = self.config
        colour = STICKER_RGB if shape[0] == 3 else (255,)
        pattern = torch.tensor(colour, dtype=torch.uint8).view(-1, 1, 1).expand(shape[0], c.size, c.size).contiguous()
        return PatchTrigger(
            (c.target,), shape[0], pattern=pattern, mask=sticker_mask(c.sticker, c.size), row=c.row, col=c.col
        )

    def _poison(self, sources: torch.Tensor, trigger: Trigger, plan: PoisonPlan, rng: torch.Generator) -> torch.Tensor:
        triggered = apply_each(trigger, sources, plan.which)
        if not self.config.physical:
            return triggered
        return random_physical(triggered, self.config.ranges(), generator=rng)


__all__ = ["PTB", "PTBConfig", "STICKER_RGB", "sticker_mask"]
