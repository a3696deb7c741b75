"""Triggers: what turns a clean image into a backdoor instance, as objects of their own.

A trigger holds one or more sub-triggers (N for the multi-trigger DCT attacks), each with
its target label; :meth:`Trigger.apply` stamps sub-trigger ``index`` onto any uint8 batch
``[N, C, H, W]`` of the trigger's channels (and, for a blend, its size). Triggers are
plain tensors and numbers, so they are saved as pickle-free files
(:mod:`advparams.backdoors.triggerfile`).

Kinds (:data:`TRIGGERS`): ``patch`` (a pattern pasted through a mask: BadNets and the
physical stickers), ``blend`` (a pattern mixed in at opacity ``alpha``) and ``dct``
(payload bits written into chosen 2-D DCT coefficients of chosen colour channels).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from advparams.errors import AdvParamsError
from advparams.registry import Registry

TRIGGERS: Registry[Any] = Registry("trigger kind")


def _check_images(images: torch.Tensor, channels: int) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise AdvParamsError(
            f"a trigger is applied to uint8 images [N, C, H, W], got {images.dtype} {tuple(images.shape)}"
        )
    if images.shape[1] != channels:
        raise AdvParamsError(f"this trigger is made for {channels}-channel images, got {images.shape[1]} channels")


@dataclass(frozen=True, eq=False)
class Trigger(ABC):
    """Base of the trigger kinds.

    Attributes:
        targets: the target label of each sub-trigger (their number is ``len(targets)``).
        channels: the image channels the trigger is made for.
    """

    kind: ClassVar[str]
    targets: tuple[int, ...]
    channels: int

    def __post_init__(self) -> None:
        if not self.targets or any(not isinstance(t, int) or t < 0 for t in self.targets):
            raise AdvParamsError("a trigger needs at least one target label, each a class index")
        if self.channels not in (1, 3):
            raise AdvParamsError(f"a trigger is made for 1 or 3 channels, got {self.channels}")

    def __len__(self) -> int:
        return len(self.targets)

    def apply(self, images: torch.Tensor, index: int = 0) -> torch.Tensor:
        """Copies of uint8 ``images`` carrying sub-trigger ``index`` (the input is not changed)."""
        _check_images(images, self.channels)
        if not 0 <= index < len(self.targets):
            raise AdvParamsError(f"sub-trigger {index} does not exist (this trigger has {len(self.targets)})")
        return self._apply(images, index)

    @abstractmethod
    def _apply(self, images: torch.Tensor, index: int) -> torch.Tensor: ...

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The trigger's numbers (JSON-ready), apart from its tensors."""

    def tensors(self) -> dict[str, torch.Tensor]:
        """The trigger's tensors (none by default)."""
        return {}

    @classmethod
    @abstractmethod
    def from_parts(
        cls, targets: tuple[int, ...], channels: int, params: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
    ) -> Trigger:
        """Rebuilds a trigger from :meth:`params` and :meth:`tensors` (validating them)."""


def _int(v: Any, what: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise AdvParamsError(f"trigger {what} must be an integer in [{lo}, {hi}], got {str(v)[:40]}")
    return v


def _float(v: Any, what: str, lo: float, hi: float) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
        raise AdvParamsError(f"trigger {what} must be a number in [{lo}, {hi}], got {str(v)[:40]}")
    return float(v)


@TRIGGERS.register("patch")
@dataclass(frozen=True, eq=False)
class PatchTrigger(Trigger):
    """A pattern pasted where a mask is set, its top-left corner at ``(row, col)``;
    negative positions count from the bottom-right (``-1``: flush with the edge).

    Attributes:
        pattern: uint8 ``[C, h, w]``.
        mask: bool ``[h, w]``: the pixels the pattern replaces.
        row: top row (negative: from the bottom).
        col: left column (negative: from the right).
    """

    kind: ClassVar[str] = "patch"
    pattern: torch.Tensor = torch.empty(0)
    mask: torch.Tensor = torch.empty(0)
    row: int = -1
    col: int = -1

    def __post_init__(self) -> None:
        super().__post_init__()
        p, m = self.pattern, self.mask
        if p.dtype != torch.uint8 or p.dim() != 3 or p.shape[0] != self.channels:
            raise AdvParamsError(f"a patch pattern must be uint8 [{self.channels}, h, w]")
        if m.dtype != torch.bool or tuple(m.shape) != tuple(p.shape[1:]) or not bool(m.any()):
            raise AdvParamsError("a patch mask must be bool [h, w] like its pattern, with at least one pixel set")

    def place(self, height: int, width: int) -> tuple[int, int]:
        """The top-left corner on ``height x width`` images."""
        h, w = self.mask.shape
        r = self.row if self.row >= 0 else height - h + 1 + self.row
        c = self.col if self.col >= 0 else width - w + 1 + self.col
        if r < 0 or c < 0 or r + h > height or c + w > width:
            raise AdvParamsError(f"a {h}x{w} patch at ({self.row}, {self.col}) does not fit {height}x{width} images")
        return r, c

    def _apply(self, images: torch.Tensor, index: int) -> torch.Tensor:
        out = images.clone()
        r, c = self.place(images.shape[2], images.shape[3])
        h, w = self.mask.shape
        region = out[:, :, r : r + h, c : c + w]  # a view: writing it writes ``out``
        m = self.mask.expand(self.channels, h, w)
        region[:, m] = self.pattern[m]
        return out

    def params(self) -> dict[str, Any]:
        return {"row": self.row, "col": self.col}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"pattern": self.pattern, "mask": self.mask.to(torch.uint8)}

    @classmethod
    def from_parts(
        cls, targets: tuple[int, ...], channels: int, params: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
    ) -> PatchTrigger:
        if set(tensors) != {"pattern", "mask"}:
            raise AdvParamsError("a patch trigger holds the tensors pattern and mask")
        mask = tensors["mask"]
        if mask.dtype != torch.uint8 or bool((mask > 1).any()):
            raise AdvParamsError("a patch mask is stored as 0/1 uint8")
        return cls(
            targets,
            channels,
            pattern=tensors["pattern"],
            mask=mask.bool(),
            row=_int(params.get("row"), "row", -4096, 4096),
            col=_int(params.get("col"), "col", -4096, 4096),
        )


@TRIGGERS.register("blend")
@dataclass(frozen=True, eq=False)
class BlendTrigger(Trigger):
    """``(1 - alpha) * image + alpha * pattern`` (Chen et al. 2017), rounded.

    Attributes:
        pattern: uint8 ``[C, H, W]``, the images' size.
        alpha: the pattern's opacity in (0, 1].
    """

    kind: ClassVar[str] = "blend"
    pattern: torch.Tensor = torch.empty(0)
    alpha: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pattern.dtype != torch.uint8 or self.pattern.dim() != 3 or self.pattern.shape[0] != self.channels:
            raise AdvParamsError(f"a blend pattern must be uint8 [{self.channels}, H, W]")
        _float(self.alpha, "alpha", 1e-6, 1.0)

    def _apply(self, images: torch.Tensor, index: int) -> torch.Tensor:
        if tuple(images.shape[1:]) != tuple(self.pattern.shape):
            raise AdvParamsError(f"this blend trigger is made for {tuple(self.pattern.shape)} images")
        out = (1 - self.alpha) * images.float() + self.alpha * self.pattern.float()
        return out.round().clamp(0, 255).to(torch.uint8)

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"pattern": self.pattern}

    @classmethod
    def from_parts(
        cls, targets: tuple[int, ...], channels: int, params: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
    ) -> BlendTrigger:
        if set(tensors) != {"pattern"}:
            raise AdvParamsError("a blend trigger holds the tensor pattern")
        return cls(targets, channels, pattern=tensors["pattern"], alpha=_float(params.get("alpha"), "alpha", 1e-6, 1.0))


# -- DCT steganography ----------------------------------------------------------------------

# ITU-R BT.601 full-range RGB <-> YCbCr (the JPEG convention).
_TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_OFFSET = torch.tensor([0.0, 128.0, 128.0])


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``[n, n]`` (``D @ block @ D.T`` is the 2-D DCT)."""
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, -1)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d


def blocks_dct(x: torch.Tensor, block: int) -> torch.Tensor:
    """The blockwise 2-D DCT of ``x`` ``[N, H, W]`` (float64) over the whole blocks:
    ``[N, H // block, W // block, block, block]``."""
    n, h, w = x.shape
    bh, bw = h // block, w // block
    d = dct_matrix(block)
    tiles = x[:, : bh * block, : bw * block].reshape(n, bh, block, bw, block).permute(0, 1, 3, 2, 4)
    return d @ tiles @ d.T


def blocks_idct(coef: torch.Tensor, into: torch.Tensor) -> torch.Tensor:
    """``into`` ``[N, H, W]`` with its whole blocks replaced by the inverse DCT of ``coef``."""
    n, bh, bw, block, _ = coef.shape
    d = dct_matrix(block)
    tiles = d.T @ coef @ d
    out = into.clone()
    out[:, : bh * block, : bw * block] = tiles.permute(0, 1, 3, 2, 4).reshape(n, bh * block, bw * block)
    return out


@TRIGGERS.register("dct")
@dataclass(frozen=True, eq=False)
class DCTTrigger(Trigger):
    """Payload bits hidden in 2-D DCT coefficients, one colour channel per sub-trigger.

    Sub-trigger ``i`` works on channel ``channel_of[i]`` (of RGB, or of YCbCr with
    ``colour_space="ycbcr"``): in every whole ``block x block`` tile, each coefficient of
    ``positions[i]`` is *set* to ``+magnitude`` for a payload bit 1 and ``-magnitude`` for
    a 0 (bits taken in turn, tile after tile); the image is transformed back, rounded and
    clipped. The payload is read back from the coefficients' signs (:meth:`read`).

    Attributes:
        channel_of: the channel of each sub-trigger.
        positions: the ``(u, v)`` coefficients of each sub-trigger.
        payloads: the payload bits of each sub-trigger.
        magnitude: the coefficients' absolute value (grey levels of the orthonormal DCT).
        block: the tile side.
        colour_space: ``"rgb"`` or ``"ycbcr"``.
    """

    kind: ClassVar[str] = "dct"
    channel_of: tuple[int, ...] = ()
    positions: tuple[tuple[tuple[int, int], ...], ...] = ()
    payloads: tuple[tuple[int, ...], ...] = ()
    magnitude: float = 20.0
    block: int = 8
    colour_space: str = "rgb"

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.targets)
        if not (len(self.channel_of) == len(self.positions) == len(self.payloads) == n):
            raise AdvParamsError("a DCT trigger needs a channel, positions and a payload for each sub-trigger")
        _int(self.block, "block", 2, 64)
        _float(self.magnitude, "magnitude", 1e-3, 1e4)
        if self.colour_space not in ("rgb", "ycbcr"):
            raise AdvParamsError(f"colour_space must be 'rgb' or 'ycbcr', got {self.colour_space!r}")
        if self.colour_space == "ycbcr" and self.channels != 3:
            raise AdvParamsError("colour_space 'ycbcr' needs 3-channel images")
        for i in range(n):
            _int(self.channel_of[i], "channel", 0, self.channels - 1)
            if not self.positions[i] or not self.payloads[i]:
                raise AdvParamsError("each DCT sub-trigger needs at least one coefficient and one payload bit")
            for pos in self.positions[i]:
                if len(pos) != 2 or not all(isinstance(v, int) and 0 <= v < self.block for v in pos):
                    raise AdvParamsError(f"DCT positions must be (u, v) pairs in [0, {self.block}), got {pos}")
            if any(b not in (0, 1) for b in self.payloads[i]):
                raise AdvParamsError("payload bits are 0 or 1")

    def _signs(self, index: int, tiles: int) -> torch.Tensor:
        """The sign (+-1) of every (tile, coefficient) of sub-trigger ``index``: ``[tiles, P]``."""
        bits = torch.tensor(self.payloads[index], dtype=torch.float64)
        p = len(self.positions[index])
        order = torch.arange(tiles * p) % len(bits)
        return (bits[order] * 2 - 1).view(tiles, p)

    def _to_space(self, x: torch.Tensor) -> torch.Tensor:
        if self.colour_space == "rgb":
            return x
        return torch.einsum("ij,njhw->nihw", _TO_YCC.double(), x) + _OFFSET.double().view(1, 3, 1, 1)

    def _from_space(self, x: torch.Tensor) -> torch.Tensor:
        if self.colour_space == "rgb":
            return x
        inv = torch.linalg.inv(_TO_YCC.double())
        return torch.einsum("ij,njhw->nihw", inv, x - _OFFSET.double().view(1, 3, 1, 1))

    def _apply(self, images: torch.Tensor, index: int) -> torch.Tensor:
        return self.embed(images.double(), index).round().clamp(0, 255).to(torch.uint8)

    def embed(self, images: torch.Tensor, index: int = 0) -> torch.Tensor:
        """Float images (0-255) carrying sub-trigger ``index``, before rounding: only the
        named coefficients of the named channel change (in the trigger's colour space)."""
        x = self._to_space(images.double())
        ch = self.channel_of[index]
        coef = blocks_dct(x[:, ch], self.block)
        n, bh, bw = coef.shape[:3]
        if bh == 0 or bw == 0:
            raise AdvParamsError(f"images smaller than one {self.block}x{self.block} DCT tile")
        us = torch.tensor([p[0] for p in self.positions[index]])
        vs = torch.tensor([p[1] for p in self.positions[index]])
        signs = self._signs(index, bh * bw).view(bh, bw, -1)
        coef[:, :, :, us, vs] = self.magnitude * signs
        x = x.clone()
        x[:, ch] = blocks_idct(coef, x[:, ch])
        return self._from_space(x)

    def read(self, images: torch.Tensor, index: int = 0) -> torch.Tensor:
        """Per image, the share of sub-trigger ``index``'s coefficients whose sign matches
        its payload: about 1 on a triggered image, about 0.5 on a clean one."""
        _check_images(images, self.channels)
        x = self._to_space(images.double())
        coef = blocks_dct(x[:, self.channel_of[index]], self.block)
        n, bh, bw = coef.shape[:3]
        us = torch.tensor([p[0] for p in self.positions[index]])
        vs = torch.tensor([p[1] for p in self.positions[index]])
        got = torch.sign(coef[:, :, :, us, vs]).view(n, -1)
        want = self._signs(index, bh * bw).view(1, -1)
        return (got == want).double().mean(1)

    def params(self) -> dict[str, Any]:
        return {
            "channel_of": list(self.channel_of),
            "positions": [[list(p) for p in ps] for ps in self.positions],
            "payloads": [list(b) for b in self.payloads],
            "magnitude": self.magnitude,
            "block": self.block,
            "colour_space": self.colour_space,
        }

    @classmethod
    def from_parts(
        cls, targets: tuple[int, ...], channels: int, params: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
    ) -> DCTTrigger:
        if tensors:
            raise AdvParamsError("a DCT trigger holds no tensors")
        try:
            channel_of = tuple(_int(c, "channel", 0, 2) for c in params["channel_of"])
            positions = tuple(
                tuple((_int(p[0], "position", 0, 63), _int(p[1], "position", 0, 63)) for p in ps)
                for ps in params["positions"]
            )
            payloads = tuple(tuple(_int(b, "payload bit", 0, 1) for b in bits) for bits in params["payloads"])
            return cls(
                targets,
                channels,
                channel_of=channel_of,
                positions=positions,
                payloads=payloads,
                magnitude=_float(params["magnitude"], "magnitude", 1e-3, 1e4),
                block=_int(params["block"], "block", 2, 64),
                colour_space=str(params["colour_space"]),
            )
        except (KeyError, TypeError, IndexError):
            raise AdvParamsError("the DCT trigger's parameters are incomplete or malformed") from None


__all__ = [
    "TRIGGERS",
    "BlendTrigger",
    "DCTTrigger",
    "PatchTrigger",
    "Trigger",
    "blocks_dct",
    "blocks_idct",
    "dct_matrix",
]
