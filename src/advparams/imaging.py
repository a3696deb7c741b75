"""What images go through between an owner and a model: lossy codecs and physical
transformations, applied to uint8 batches ``[N, C, H, W]`` (``C`` 1 or 3).

Shared by the backdoor family (compression-resistant and physical backdoors are trained
and measured with them) and by anything that asks whether a trigger or a watermark key
survives the way images travel. Every random draw comes from a ``torch.Generator``, so
a transformation is reproducible from its seed.

Codecs (Pillow): ``jpeg`` (``quality`` 1-95), ``webp`` (``quality`` 1-100) and
``jpeg2000``, whose quality ``q`` is mapped to a target PSNR of ``20 + q / 4`` dB
(Pillow's ``quality_mode="dB"``; 22.5 dB at 10, 42.5 dB at 90): [inferred] the papers give
JPEG-style quality numbers for every codec, not how they map onto JPEG 2000. A
compression *rate* (``quality_mode="rates"``) was tried first: at rates below about 1.5
it gave small smooth images back unchanged, so "quality 70" would not compress at all.

Transformations (:data:`TRANSFORMATIONS`), each at a ``strength`` in its own unit:

=======================  ===============================================================
``rotation``             degrees; each image turned by +-strength (random sign)
``scale``                each image zoomed by a factor ``1 +- strength`` about its centre
``perspective``          each corner moved by ``strength`` x the image side, random direction
``blur``                 Gaussian blur, sigma = strength pixels
``brightness-contrast``  brightness and contrast each times ``1 +- strength``
``noise``                Gaussian sensor noise, std = strength grey levels
``colour-shift``         print-and-capture colour: per-channel gain ``1 +- strength`` and
                         offset up to ``+-40 x strength`` grey levels, desaturated by
                         ``strength / 2``
=======================  ===============================================================

[inferred] the transformation set, units and ranges: the physical-backdoor paper names
"physical transformations" without listing them; these follow its examples (distance,
angle, illumination, printing) and common EOT practice.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from advparams.errors import AdvParamsError

CODECS = ("jpeg", "jpeg2000", "webp")
"""The lossy codecs :func:`compress` knows."""

QUALITIES = (1, 95)
"""The lowest and highest quality :func:`compress` takes (for every codec)."""

TRANSFORMATIONS = (
    "rotation",
    "scale",
    "perspective",
    "blur",
    "brightness-contrast",
    "noise",
    "colour-shift",
)
"""The transformations :func:`transform` knows."""


def _check_batch(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise AdvParamsError(
            f"images must be uint8 [N, C, H, W] with 1 or 3 channels, got {images.dtype} {tuple(images.shape)}"
        )


def check_quality(quality: int, *, what: str = "quality") -> int:
    """``quality`` if it is an integer in :data:`QUALITIES` (a float such as 50.0 or a bool
    is refused, not rounded).

    Example:
        >>> check_quality(0, what="--qualities")
        Traceback (most recent call last):
        ...
        advparams.errors.AdvParamsError: --qualities must be an integer in [1, 95], got 0
    """
    from advparams.files import integer

    return integer(quality, what=what, lo=QUALITIES[0], hi=QUALITIES[1])


def check_codec(codec: str) -> str:
    """``codec`` if it is one of :data:`CODECS`."""
    if codec not in CODECS:
        raise AdvParamsError(f"unknown codec {str(codec)[:40]!r}; known: {', '.join(CODECS)}")
    return codec


def _pillow_options(codec: str, quality: int) -> tuple[str, dict[str, object]]:
    check_codec(codec)
    check_quality(quality)
    if codec == "jpeg":
        return "JPEG", {"quality": int(quality)}
    if codec == "webp":
        return "WEBP", {"quality": int(quality), "method": 4}
    return "JPEG2000", {"quality_mode": "dB", "quality_layers": [20.0 + int(quality) / 4]}


def compress(images: torch.Tensor, codec: str, quality: int) -> torch.Tensor:
    """Each image encoded with ``codec`` at ``quality`` and decoded again.

    Args:
        images: uint8 ``[N, C, H, W]``, ``C`` 1 (grey) or 3 (RGB).
        codec: one of :data:`CODECS`.
        quality: 1-95 (JPEG 2000: a target PSNR of ``20 + quality / 4`` dB).

    Returns:
        The decoded images, uint8, of the same shape.

    Example:
        >>> x = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        >>> y = compress(x, "jpeg", 30)
        >>> y.shape == x.shape, bool((y != x).any())
        (True, True)
    """
    from PIL import Image

    _check_batch(images)
    fmt, options = _pillow_options(codec, quality)
    grey = images.shape[1] == 1
    arr = images.permute(0, 2, 3, 1).contiguous().numpy()
    out = np.empty_like(arr)
    for i in range(arr.shape[0]):
        pic = Image.fromarray(arr[i, :, :, 0] if grey else arr[i], mode="L" if grey else "RGB")
        buf = io.BytesIO()
        pic.save(buf, format=fmt, **options)
        buf.seek(0)
        with Image.open(buf) as decoded:
            back = np.asarray(decoded.convert("L" if grey else "RGB"))
        out[i] = back[:, :, None] if grey else back
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


# -- transformations ----------------------------------------------------------------------


def _signs(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``x`` (float) resampled through the affine maps ``theta`` ``[N, 2, 3]`` (output to
    input coordinates in [-1, 1]), edges repeated as a camera would see the surround."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _homographies(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """The 3x3 maps taking each set of four points ``src[i]`` onto ``dst[i]`` (``[N, 4, 2]``)."""
    n = src.shape[0]
    a = torch.zeros(n, 8, 8, dtype=torch.float64)
    b = torch.zeros(n, 8, dtype=torch.float64)
    for k in range(4):
        x, y = src[:, k, 0], src[:, k, 1]
        u, v = dst[:, k, 0], dst[:, k, 1]
        a[:, 2 * k, 0], a[:, 2 * k, 1], a[:, 2 * k, 2] = x, y, 1
        a[:, 2 * k, 6], a[:, 2 * k, 7] = -u * x, -u * y
        a[:, 2 * k + 1, 3], a[:, 2 * k + 1, 4], a[:, 2 * k + 1, 5] = x, y, 1
        a[:, 2 * k + 1, 6], a[:, 2 * k + 1, 7] = -v * x, -v * y
        b[:, 2 * k], b[:, 2 * k + 1] = u, v
    h = torch.linalg.solve(a, b)
    return torch.cat([h, torch.ones(n, 1, dtype=torch.float64)], 1).view(n, 3, 3)


def _perspective(x: torch.Tensor, shift: float, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    angle = torch.rand(n, 4, generator=generator, dtype=torch.float64) * 2 * math.pi
    moved = corners + 2 * shift * torch.stack([angle.cos(), angle.sin()], -1)  # sides span 2 units
    hom = _homographies(moved, corners.expand(n, 4, 2))  # output -> input, for sampling
    ys, xs = torch.meshgrid(
        (torch.arange(h, dtype=torch.float64) + 0.5) / h * 2 - 1,
        (torch.arange(w, dtype=torch.float64) + 0.5) / w * 2 - 1,
        indexing="ij",
    )
    pts = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, -1, 3)
    mapped = pts @ hom.transpose(1, 2)
    grid = (mapped[..., :2] / mapped[..., 2:]).view(n, h, w, 2).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    pad = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(pad, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _apply(x: torch.Tensor, kind: str, strength: float, generator: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    if kind == "rotation":
        a = _signs(n, generator) * math.radians(strength)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = a.cos(), -a.sin(), a.sin(), a.cos()
        return _warp(x, theta)
    if kind == "scale":
        factor = 1 + _signs(n, generator) * strength
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / factor.clamp(min=0.05)
        return _warp(x, theta)
    if kind == "perspective":
        return _perspective(x, strength, generator)
    if kind == "blur":
        return _blur(x, strength)
    if kind == "brightness-contrast":
        bright = 1 + _signs(n, generator) * strength
        contrast = 1 + _signs(n, generator) * strength
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * contrast.view(-1, 1, 1, 1) + mean) * bright.view(-1, 1, 1, 1)
    if kind == "noise":
        return x + strength * torch.randn(x.shape, generator=generator)
    if kind == "colour-shift":
        c = x.shape[1]
        gain = 1 + (torch.rand(n, c, 1, 1, generator=generator) * 2 - 1) * strength
        offset = (torch.rand(n, c, 1, 1, generator=generator) * 2 - 1) * 40 * strength
        out = x * gain + offset
        grey = out.mean(dim=1, keepdim=True)
        return out + (grey - out) * min(strength / 2, 1.0)
    raise AdvParamsError(f"unknown transformation {kind!r}; known: {', '.join(TRANSFORMATIONS)}")


STRENGTH_LIMITS: dict[str, float] = {
    "rotation": 180.0,  # degrees
    "scale": 1.0,  # zoom 1 +- strength
    "perspective": 1.0,  # corner shift, share of the side
    "blur": 10.0,  # Gaussian sigma, pixels (the kernel spans 6 sigma + 1 pixels)
    "brightness-contrast": 1.0,  # factor 1 +- strength
    "noise": 255.0,  # std, grey levels
    "colour-shift": 2.0,  # gain 1 +- strength, offset up to 40 x strength grey levels
}
"""The largest strength of each transformation: beyond these an image is destroyed
anyway, and a blur's time and memory grow with its sigma squared."""


def check_strength(kind: str, strength: float) -> float:
    """``strength`` if ``kind`` is one of :data:`TRANSFORMATIONS` and ``strength`` a finite
    number in ``[0, STRENGTH_LIMITS[kind]]``."""
    if kind not in TRANSFORMATIONS:
        raise AdvParamsError(f"unknown transformation {str(kind)[:40]!r}; known: {', '.join(TRANSFORMATIONS)}")
    ok = isinstance(strength, (int, float)) and not isinstance(strength, bool) and math.isfinite(strength)
    top = STRENGTH_LIMITS[kind]
    if not ok or not 0 <= strength <= top:
        raise AdvParamsError(f"{kind} strength must be a number in [0, {top:g}], got {strength!r}")
    return float(strength)


def transform(images: torch.Tensor, kind: str, strength: float, *, generator: torch.Generator) -> torch.Tensor:
    """``images`` through transformation ``kind`` at ``strength`` (see the module's table).

    Args:
        images: uint8 ``[N, C, H, W]``.
        kind: one of :data:`TRANSFORMATIONS`.
        strength: the transformation's strength in its own unit (0: unchanged).
        generator: every random draw (sign, direction, noise) comes from it.

    Example:
        >>> x = torch.full((2, 1, 8, 8), 100, dtype=torch.uint8)
        >>> bool((transform(x, "noise", 0.0, generator=torch.Generator()) == x).all())
        True
    """
    _check_batch(images)
    check_strength(kind, strength)
    if strength == 0 or images.shape[0] == 0:
        return images.clone()
    out = _apply(images.float(), kind, float(strength), generator)
    return out.round().clamp(0, 255).to(torch.uint8)


def random_physical(images: torch.Tensor, ranges: Mapping[str, float], *, generator: torch.Generator) -> torch.Tensor:
    """``images`` through every transformation in ``ranges`` in turn (in the order of
    :data:`TRANSFORMATIONS`), each image at its own strength drawn uniformly from
    ``[0, ranges[kind]]``: the random physical conditions a physical backdoor is trained
    under."""
    _check_batch(images)
    unknown = sorted(set(ranges) - set(TRANSFORMATIONS))
    if unknown:
        raise AdvParamsError(f"unknown transformation(s) {', '.join(unknown)}; known: {', '.join(TRANSFORMATIONS)}")
    x = images.float()
    n = x.shape[0]
    for kind in TRANSFORMATIONS:
        top = float(ranges.get(kind, 0.0))
        if top <= 0 or n == 0:
            continue
        strengths = torch.rand(n, generator=generator) * top
        # Each image at its own strength: one call per distinct strength would be slow, so
        # transformations whose strength is a per-image factor are applied image by image.
        x = torch.cat([_apply(x[i : i + 1], kind, float(strengths[i]), generator) for i in range(n)])
    return x.round().clamp(0, 255).to(torch.uint8)


# -- image files ----------------------------------------------------------------------------

MAX_IMAGE_SIDE = 4096
"""The largest width or height :func:`read_image` decodes (a small file can claim a huge
image: the size is checked from the header, before any pixel is decoded)."""

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "PPM", "BMP", "GIF", "TIFF")
"""The formats :func:`read_image` opens (Pillow's names; ``PPM`` covers PBM, PGM and PPM).
Pillow knows many more, some of which run other programs (EPS runs Ghostscript) or
carry decoders rarely exercised; an image from someone else is opened only as one of these."""


def read_image(path: str | os.PathLike[str], channels: int) -> torch.Tensor:
    """A PNG, JPEG, WEBP, PPM, BMP, GIF or TIFF file as uint8 ``[channels, H, W]`` (grey or
    RGB; the first frame of an animation).

    The work is bounded before decoding: the file is a regular file of at most
    ``LIMITS["image"]`` bytes, its format one of :data:`IMAGE_FORMATS`, and its sides, read
    from its header, at most :data:`MAX_IMAGE_SIDE` (so at most 4096 x 4096 pixels are ever
    decoded, whatever a compressed stream would inflate to).

    Raises:
        AdvParamsError: not a regular file, over the size cap, not an image of those formats
            (or one Pillow cannot decode), or an image with a side over :data:`MAX_IMAGE_SIDE`.
    """
    import warnings

    from PIL import Image

    from advparams.files import LIMITS, read_file

    if channels not in (1, 3):
        raise AdvParamsError(f"images are read as 1 or 3 channels, not {channels}")
    data = read_file(path, what="image file", limit=LIMITS["image"])
    too_big = f"{path} is too large an image (at most {MAX_IMAGE_SIDE} pixels a side)"
    try:
        with warnings.catch_warnings():  # one error line, or none: Pillow's notes on odd files are not shown
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as pic:
                width, height = pic.size
                if max(width, height) > MAX_IMAGE_SIDE:
                    raise AdvParamsError(f"{too_big}: it is {width}x{height}")
                if min(width, height) < 1:
                    raise AdvParamsError(f"{path} is an empty image ({width}x{height})")
                arr = np.array(pic.convert("L" if channels == 1 else "RGB"))
    except AdvParamsError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # Pillow's own cap, from the header
        raise AdvParamsError(too_big) from None
    except Exception as exc:  # noqa: BLE001  (Pillow's decoders raise many types on a malformed file)
        raise AdvParamsError(
            f"{path} is not an image Pillow can read as {', '.join(IMAGE_FORMATS)} ({type(exc).__name__})"
        ) from None
    if arr.shape[:2] != (height, width):
        raise AdvParamsError(
            f"{path} decoded to {arr.shape[1]}x{arr.shape[0]} pixels, not the {width}x{height} it declares"
        )
    x = torch.from_numpy(arr)
    return x.unsqueeze(0) if channels == 1 else x.permute(2, 0, 1).contiguous()


def png_bytes(image: torch.Tensor) -> bytes:
    """uint8 ``[C, H, W]`` (C 1 or 3) encoded as PNG (lossless)."""
    from PIL import Image

    arr = image.permute(1, 2, 0).contiguous().numpy()
    pic = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, mode="L" if arr.shape[2] == 1 else "RGB")
    buf = io.BytesIO()
    pic.save(buf, format="PNG")
    return buf.getvalue()


__all__ = [
    "CODECS",
    "IMAGE_FORMATS",
    "MAX_IMAGE_SIDE",
    "QUALITIES",
    "TRANSFORMATIONS",
    "check_codec",
    "check_quality",
    "STRENGTH_LIMITS",
    "check_strength",
    "compress",
    "png_bytes",
    "random_physical",
    "read_image",
    "transform",
]
