"""Imperceptible multi-channel backdoor by DCT steganography (Xue, Ni, Wu, Zhang, Zhang,
Wang & Liu, arXiv 2201.13164, 2022): N triggers hidden in the DCT coefficients of
different colour channels; N-to-N (trigger i to target i) and N-to-One (every trigger to
one target).

The paper's abstract gives the idea and the two variants; every number is ours and
[inferred]: sub-trigger ``i`` lives in channel ``i mod C`` (R, G, B; or Y, Cb, Cr), in
8x8 tiles, in a pair of mid-frequency coefficients that moves one step outwards for each
further trigger sharing a channel (``(4, 5), (5, 4)``, then ``(3, 6), (6, 3)``, ...); the
coefficients are set to +-``magnitude`` by 8 payload bits from the seed; N-to-N targets
are ``target, target + 1, ...`` unless listed; N-to-One sends each trigger on its own to
``target``; 10 % poisoning split evenly over the triggers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from advparams.backdoors.base import BACKDOORS, Backdoor, BackdoorOptions
from advparams.backdoors.triggers import DCTTrigger
from advparams.errors import AdvParamsError
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class DCTConfig(BackdoorOptions):
    """Settings of the DCT-steganography backdoor (and the shared :class:`BackdoorOptions`).

    Attributes:
        mode: ``"n-to-n"`` (trigger i to target i) or ``"n-to-one"`` (all to ``target``).
        triggers: N, the number of triggers.
        targets: N-to-N targets, one per trigger (empty: ``target, target + 1, ...``).
        magnitude: the coefficients' absolute value, grey levels of the orthonormal 2-D
            DCT [inferred].
        block: the DCT tile side, pixels (the JPEG tile) [inferred].
        bits: payload bits per trigger [inferred].
        colour_space: ``"rgb"`` or ``"ycbcr"`` (3-channel images only) [inferred].
    """

    mode: Literal["n-to-n", "n-to-one"] = "n-to-n"
    triggers: int = 3
    targets: tuple[int, ...] = ()
    magnitude: float = 20.0
    block: int = 8
    bits: int = 8
    colour_space: Literal["rgb", "ycbcr"] = "rgb"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("n-to-n", "n-to-one"):
            raise ValueError(f"mode must be 'n-to-n' or 'n-to-one', got {self.mode!r}")
        if not 1 <= self.triggers <= 12:
            raise ValueError(f"triggers must be in [1, 12], got {self.triggers}")
        if self.targets and (len(self.targets) != self.triggers or self.mode != "n-to-n"):
            raise ValueError("targets lists one label per trigger, for mode n-to-n only")
        if any(t < 0 for t in self.targets):
            raise ValueError("targets are class indices")
        if not 0.0 < self.magnitude <= 1000.0:
            raise ValueError(f"magnitude must be in (0, 1000], got {self.magnitude}")
        if not 4 <= self.block <= 32:
            raise ValueError(f"block must be in [4, 32], got {self.block}")
        if not 1 <= self.bits <= 256:
            raise ValueError(f"bits must be in [1, 256], got {self.bits}")


def coefficient_pair(step: int, block: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The ``step``-th mid-frequency pair of a ``block`` tile: ``(m, m+1), (m+1, m)`` with
    ``m = block // 2``, then one step outwards per further step."""
    lo, hi = block // 2 - step, block // 2 + 1 + step
    if lo < 1 or hi >= block:
        raise AdvParamsError(f"a {block}x{block} tile has no room for {step + 1} coefficient pairs on one channel")
    return (lo, hi), (hi, lo)


@BACKDOORS.register("dct")
class DCTSteganography(Backdoor[DCTConfig]):
    """DCT-steganography multi-channel backdoor (Xue et al. 2022), N-to-N or N-to-One."""

    name = "dct"
    Config = DCTConfig

    @classmethod
    def paper_figure(cls, options: Mapping[str, Any]) -> str:
        if options.get("mode", "n-to-n") == "n-to-one":
            return "mean ASR 90.22 % (N-to-One, CIFAR-10); clean accuracy unaffected"
        return "mean ASR 93.95 % (N-to-N, CIFAR-10); clean accuracy unaffected"

    tiny = {"poison_rate": 0.15, "triggers": 2, "magnitude": 30.0, "block": 8}

    def targets(self, num_classes: int) -> tuple[int, ...]:
        """The target of each trigger."""
        c = self.config
        if c.mode == "n-to-one":
            return (c.target,) * c.triggers
        return tuple(c.targets) if c.targets else tuple((c.target + i) % num_classes for i in range(c.triggers))

    def make_trigger(self, shape: tuple[int, int, int], num_classes: int, generator: torch.Generator) -> DCTTrigger:
        c = self.config
        channels = shape[0]
        if c.colour_space == "ycbcr" and channels != 3:
            raise AdvParamsError("colour_space 'ycbcr' needs colour (3-channel) images")
        if min(shape[1:]) < c.block:
            raise AdvParamsError(f"images of {shape[1]}x{shape[2]} hold no {c.block}x{c.block} DCT tile")
        payloads = []
        for _ in range(c.triggers):
            bits = torch.randint(0, 2, (c.bits,), generator=generator)
            if c.bits > 1 and bool((bits == bits[0]).all()):
                bits[-1] = 1 - bits[0]  # a constant payload is a plain offset, not a code
            payloads.append(tuple(int(b) for b in bits))
        return DCTTrigger(
            self.targets(num_classes),
            channels,
            channel_of=tuple(i % channels for i in range(c.triggers)),
            positions=tuple(coefficient_pair(i // channels, c.block) for i in range(c.triggers)),
            payloads=tuple(payloads),
            magnitude=c.magnitude,
            block=c.block,
            colour_space=c.colour_space,
        )


__all__ = ["DCTConfig", "DCTSteganography", "coefficient_pair"]
