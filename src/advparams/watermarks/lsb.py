"""Least-significant-bit (LSB) image steganography on uint8 images.

A message of ``L`` bits is written into bit-plane ``plane`` of the first ``L`` pixel
values of each image, in row-major ``(C, H, W)`` order; every other bit of every pixel is
left as it was, so a pixel changes by at most ``2 ** plane``. Used to hide a user's
fingerprint in watermark key images (Sun, Xue, Wang and Liu, arXiv 2104.09203).

LSB bits survive lossless copies only: JPEG compression, resizing or added noise destroy
them (the watermark attacks measure this).

Example:
    >>> import torch
    >>> images = torch.full((2, 1, 4, 4), 200, dtype=torch.uint8)
    >>> bits = torch.tensor([1, 0, 1, 1, 0], dtype=torch.bool)
    >>> stego = hide_bits(images, bits)
    >>> reveal_bits(stego, 5)[0].tolist() == bits.tolist()
    True
    >>> int((stego.int() - images.int()).abs().max())
    1
"""

from __future__ import annotations

import torch

from advparams.errors import AdvParamsError


def _check(images: torch.Tensor, length: int, plane: int) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise AdvParamsError(
            f"LSB steganography needs uint8 images [N, C, H, W], got {images.dtype} {tuple(images.shape)}"
        )
    if not 0 <= plane <= 7:
        raise AdvParamsError(f"bit-plane must be in [0, 7], got {plane}")
    capacity = images[0].numel() if images.shape[0] else 0
    if length > capacity:
        raise AdvParamsError(f"a {length}-bit message does not fit in images of {capacity} pixel values")


def hide_bits(images: torch.Tensor, bits: torch.Tensor, *, plane: int = 0) -> torch.Tensor:
    """Copies of ``images`` (uint8 ``[N, C, H, W]``) carrying ``bits`` (``[L]`` or ``[N, L]``,
    bool or 0/1) in bit-plane ``plane`` of their first ``L`` pixel values."""
    bits = bits.to(torch.bool)
    if bits.dim() == 1:
        bits = bits.expand(images.shape[0], -1)
    if bits.dim() != 2 or bits.shape[0] != images.shape[0]:
        raise AdvParamsError(f"bits must be [L] or [N, L] with N = {images.shape[0]}, got {tuple(bits.shape)}")
    _check(images, bits.shape[1], plane)
    flat = images.reshape(images.shape[0], -1).clone()
    length = bits.shape[1]
    mask = 1 << plane
    head = flat[:, :length]
    flat[:, :length] = (head & (0xFF ^ mask)) | (bits.to(torch.uint8) << plane)
    return flat.view_as(images)


def reveal_bits(images: torch.Tensor, length: int, *, plane: int = 0) -> torch.Tensor:
    """The ``length``-bit message in bit-plane ``plane`` of each image: bool ``[N, length]``."""
    _check(images, length, plane)
    flat = images.reshape(images.shape[0], -1)[:, :length]
    return ((flat >> plane) & 1).to(torch.bool)
