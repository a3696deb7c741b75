"""Keyed shuffles: a large, exactly invertible change described by a 32-byte secret.

A shuffle of tensor ``name`` moves ``count`` of its values to each other's positions.
The positions and their order come from the secret alone, so a key that holds the
secret, the tensor names and the counts describes the change however many values move,
and the lock keeps each tensor's values exactly (only their places change).

The draw is defined by this module, not by a library's random generator, so a key
unlocks under any future torch or Python version:

1. ``stream = SHAKE-256(b"advparams-shuffle-v1\\0" + secret + name.encode("utf-8"))``,
   read as ``numel`` little-endian signed 64-bit integers;
2. ``order = argsort(stream, stable=True)`` (a uniformly random permutation of the flat
   positions; ties, of probability about ``numel**2 / 2**64``, are broken by position);
3. the shuffled positions are ``p = order[:count]``; locking moves the value at
   ``p[i + 1]`` to ``p[i]`` (indices mod ``count``): one cycle through all of them, so no
   value stays where it was (values equal by chance excepted).

A shuffle may also *dither* [ours]: after the move, the low ``dither`` mantissa bits of
every moved value (at most the dtype's mantissa: 52 / 23 / 10 / 7 bits for float64 /
float32 / float16 / bfloat16) are XORed with a keyed stream, so the locked tensor no
longer holds the original's values, only their signs and binades; unlocking XORs again
before moving the values back, so it stays bit-exact:

4. ``masks = SHAKE-256(b"advparams-dither-v1\\0" + secret + name.encode("utf-8"))``, read
   as ``count`` little-endian unsigned 64-bit integers, each ANDed with ``2**bits - 1``;
   the value now at ``p[i]`` has its bit pattern XORed with ``masks[i]``.

Without dither the locked tensor is a permutation of the original's values: anyone who
holds the locked model and one other version of the weights (a traced user's copy) can
tell which of that version's values are not among the original's.

Example:
    >>> import torch
    >>> x = torch.arange(6.0)
    >>> p = shuffle_positions(bytes(32), "w", 6, 4)
    >>> locked = x.clone(); apply_shuffle_(locked, p)
    >>> bool((locked != x).sum() == 4), sorted(locked.tolist()) == x.tolist()
    (True, True)
    >>> undo_shuffle_(locked, p); bool(torch.equal(locked, x))
    True
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

SECRET_BYTES = 32
_DOMAIN = b"advparams-shuffle-v1\0"
_DITHER = b"advparams-dither-v1\0"
#: Mantissa bits and the integer view of each floating dtype a shuffle may dither.
MANTISSA_BITS = {torch.float64: 52, torch.float32: 23, torch.float16: 10, torch.bfloat16: 7}
_INT_VIEW = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


def shuffle_positions(secret: bytes, name: str, numel: int, count: int) -> torch.Tensor:
    """The ``count`` flat positions of tensor ``name`` (``numel`` values) that the shuffle moves,
    in cycle order (int64, on the CPU)."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"a shuffle secret has {SECRET_BYTES} bytes, got {len(secret)}")
    if not 0 <= count <= numel:
        raise ValueError(f"cannot shuffle {count} of {numel} values")
    if count < 2:
        return torch.empty(0, dtype=torch.int64)
    stream = hashlib.shake_256(_DOMAIN + secret + name.encode("utf-8")).digest(8 * numel)
    words = torch.from_numpy(np.frombuffer(stream, dtype="<i8").astype(np.int64))
    return torch.argsort(words, stable=True)[:count].clone()


def apply_shuffle_(flat: torch.Tensor, positions: torch.Tensor) -> None:
    """Locks in place: ``flat[p[i]] = flat[p[i + 1]]`` (a 1-d tensor; ``p`` from :func:`shuffle_positions`)."""
    if positions.numel() < 2:
        return
    p = positions.to(flat.device)
    flat[p] = flat[p.roll(-1)].clone()


def undo_shuffle_(flat: torch.Tensor, positions: torch.Tensor) -> None:
    """Unlocks in place: the exact inverse of :func:`apply_shuffle_`."""
    if positions.numel() < 2:
        return
    p = positions.to(flat.device)
    flat[p.roll(-1)] = flat[p].clone()


def dither_masks(secret: bytes, name: str, count: int, dtype: torch.dtype, bits: int) -> torch.Tensor:
    """The XOR masks of a dithered shuffle of ``count`` values of tensor ``name`` (in the
    integer dtype of ``dtype``'s width, on the CPU; step 4 of the module docstring)."""
    if dtype not in MANTISSA_BITS:
        raise ValueError(f"cannot dither a {dtype} tensor (floating dtypes only)")
    width = min(bits, MANTISSA_BITS[dtype])
    stream = hashlib.shake_256(_DITHER + secret + name.encode("utf-8")).digest(8 * count)
    words = np.frombuffer(stream, dtype="<u8") & np.uint64((1 << width) - 1)
    return torch.from_numpy(words.astype(np.int64)).to(_INT_VIEW[dtype])


def xor_dither_(flat: torch.Tensor, positions: torch.Tensor, masks: torch.Tensor) -> None:
    """XORs the bit patterns of ``flat[positions[i]]`` with ``masks[i]`` in place (its own
    inverse)."""
    if positions.numel() == 0:
        return
    bits = flat.view(_INT_VIEW[flat.dtype])
    p = positions.to(flat.device)
    bits[p] = bits[p] ^ masks.to(flat.device)
