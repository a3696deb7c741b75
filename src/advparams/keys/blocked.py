"""Blocked keyed shuffles: every value of a large tensor moved, at the speed of memory.

The uniform shuffle of :mod:`advparams.keys.shuffle` draws one permutation of all ``n``
positions of a tensor by sorting ``n`` keyed 64-bit words: ``n log n`` work and a random
read per value, far too slow for a checkpoint of billions of parameters (``docs/scale.md``
measures both layouts). A *blocked* shuffle (layout 2) cuts the tensor into rows of
:data:`BLOCK` consecutive values and moves every value of the tensor with two cheap keyed
permutations that are computed row by row in the processor's caches:

The 32-byte secret is first split into three: the *permutation secret*
``P = SHA-256(b"advparams-blocked-perm-v1\0" + secret)``, the *mask key*
``M = SHA-256(b"advparams-blocked-mask-v1\0" + secret)`` and, per tensor, the *row-key key*
``K = SHA-256(b"advparams-blocked-rows-v1\0" + secret + name.encode("utf-8"))``; per-user
keys (``docs/scale.md``) can then hand out ``P``, ``M`` and each row's mask key without the
secret.

1. ``stream = SHAKE-256(b"advparams-blocked-v1\0" + P + name.encode("utf-8"))``,
   read as ``R`` little-endian signed 64-bit words (``R = n // BLOCK`` rows), then ``R``
   bytes, then ``R`` little-endian unsigned 16-bit words; ``rows = argsort(words,
   stable=True)``, ``h[i] = bytes[i]`` and ``r[i] = words16[i] mod BLOCK``;
2. a pool of :data:`POOL` permutations of ``BLOCK`` positions: ``pool[k] =
   argsort(SHAKE-256(b"advparams-blocked-pool-v1\0" + P)`` read as ``POOL * BLOCK``
   little-endian signed 64-bit words, row ``k``, stable``)``;
3. locked row ``i`` holds original row ``rows[i]`` with its values rearranged:
   ``locked[i, j] = original[rows[i], (pool[h[i]][j] - r[i]) mod BLOCK]``, so each row has
   its own arrangement (one of ``POOL * BLOCK`` per row, the pool itself secret);
4. the last ``n mod BLOCK`` values, if any (locked row ``R``), are shuffled among
   themselves as a uniform shuffle of that many values with the secret ``P`` and the name
   ``name + "#tail"`` (step 1 of :mod:`advparams.keys.shuffle`);
5. dither [ours], as the uniform shuffle's but with a faster stream: after the move, the low
   ``bits`` mantissa bits of each value of locked row ``i`` are XORed with a word of the row's
   mask stream, read as little-endian unsigned words of the dtype's width, in order. Row
   ``i``'s mask key is the first 12 bytes of ``AES-256-ECB_K(le64(i) + 8 zero bytes)``; its
   stream is ``AES-256-ECB_M(row key + le32(c))`` for ``c = 0, 1, 2, ...`` (16 bytes each).

Unlocking undoes step 5, then steps 3 and 4, bit-exactly: ``original[rows[i], k] =
locked[i, pool⁻¹[h[i]][(k + r[i]) mod BLOCK]]``, row ``i``'s index a slice of the pool's
inverse laid twice end to end, read without any arithmetic.

What the blocked layout gives up against the uniform one (``docs/scale.md``): a value
moves only among the ``BLOCK`` values of its own run of consecutive positions (their
row moves as a whole), so the locked tensor tells which values shared a run: for a weight
matrix whose rows are ``BLOCK`` long, each neuron's incoming weights as a set, not which
input each one belongs to. The uniform layout reveals only the set of the whole tensor's
values.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
import torch

BLOCK = 4096
"""Values per row of a blocked shuffle."""
POOL = 256
"""Row permutations drawn from the secret."""
CHUNK_ROWS = 32
"""Rows permuted at a time (their indices stay in the caches)."""
_DOMAIN = b"advparams-blocked-v1\0"
_POOL = b"advparams-blocked-pool-v1\0"
_PERM = b"advparams-blocked-perm-v1\0"
_MASK = b"advparams-blocked-mask-v1\0"
_ROWS = b"advparams-blocked-rows-v1\0"
ROW_KEY = 12
"""Bytes of a row's mask key."""
_INT_VIEW = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
             torch.bfloat16: torch.int16}  # fmt: skip
_NP_WORDS = {8: "<u8", 4: "<u4", 2: "<u2"}


@lru_cache(maxsize=2)
def _pool(secret: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    """The pool's permutations (``[POOL, BLOCK]`` int64) and every rotation of their
    inverses (``[POOL * 2 * BLOCK - BLOCK + 1, BLOCK]``: row ``2 * BLOCK * k + r`` is
    ``pool⁻¹[k][(j + r) mod BLOCK]``, a view of the inverses laid twice end to end)."""
    words = np.frombuffer(hashlib.shake_256(_POOL + secret).digest(8 * POOL * BLOCK), dtype="<i8")
    perms = torch.from_numpy(words.astype(np.int64).reshape(POOL, BLOCK)).argsort(dim=1, stable=True)
    inverse = perms.argsort(dim=1)
    return perms, torch.cat([inverse, inverse], dim=1).reshape(-1).unfold(0, BLOCK, 1)


def _rows(secret: bytes, name: str, rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    stream = hashlib.shake_256(_DOMAIN + secret + name.encode("utf-8")).digest(11 * rows)
    words = torch.from_numpy(np.frombuffer(stream, dtype="<i8", count=rows).astype(np.int64))
    h = torch.from_numpy(np.frombuffer(stream, dtype=np.uint8, count=rows, offset=8 * rows).astype(np.int64))
    m = np.frombuffer(stream, dtype="<u2", count=rows, offset=9 * rows).astype(np.int64) % BLOCK
    return torch.argsort(words, stable=True), h, torch.from_numpy(m)


def is_blocked(numel: int) -> bool:
    """Whether a tensor of ``numel`` values is large enough for the blocked layout (two rows)."""
    return numel >= 2 * BLOCK


def split_secret(secret: bytes) -> tuple[bytes, bytes]:
    """The permutation secret ``P`` and the mask key ``M`` of a blocked shuffle's secret."""
    return hashlib.sha256(_PERM + secret).digest(), hashlib.sha256(_MASK + secret).digest()


def row_keys(secret: bytes, name: str, count: int) -> np.ndarray:
    """The mask keys of a tensor's first ``count`` locked rows (``[count, ROW_KEY]`` uint8)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = hashlib.sha256(_ROWS + secret + name.encode("utf-8")).digest()
    blocks = np.zeros((count, 16), dtype=np.uint8)
    blocks[:, :8] = np.arange(count, dtype="<u8")[:, None].view(np.uint8)
    out = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(blocks.tobytes())
    return np.frombuffer(out, dtype=np.uint8).reshape(count, 16)[:, :ROW_KEY]


def mask_(flat: torch.Tensor, mask_key: bytes, keys: np.ndarray, bits: int) -> None:
    """XORs the low ``bits`` bits (capped at the dtype's mantissa) of each locked row's
    values with its mask stream (step 5 of the module docstring; its own inverse). ``keys``
    holds one row key per row of ``flat``, the tail's last."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from advparams.keys.shuffle import MANTISSA_BITS

    width = flat.element_size()
    word = np.dtype(_NP_WORDS[width])
    mask = word.type((1 << min(bits, MANTISSA_BITS[flat.dtype])) - 1)
    ints = flat.view(_INT_VIEW[flat.dtype]).numpy().view(word)
    per_row = -(-BLOCK * width // 16)  # 16-byte blocks of one row's stream
    counters = np.arange(per_row, dtype="<u4")[:, None].view(np.uint8)
    aes = Cipher(algorithms.AES(mask_key), modes.ECB()).encryptor()
    step = max(1, (1 << 20) // (BLOCK * width))  # rows per step: 1 MiB of stream, in the caches
    blocks = np.empty((step, per_row, 16), dtype=np.uint8)
    blocks[:, :, ROW_KEY:] = counters[None, :, :]
    out = bytearray(blocks.nbytes + 15)
    words = np.frombuffer(out, dtype=word, count=blocks.nbytes // width)
    for a in range(0, keys.shape[0], step):
        b = min(keys.shape[0], a + step)
        blocks[: b - a, :, :ROW_KEY] = keys[a:b, None, :]
        aes.update_into(blocks[: b - a].reshape(-1).data, out)
        part = ints[a * BLOCK : b * BLOCK]  # the tail, if here, is the last row and shorter
        mine = words[: part.size]
        np.bitwise_and(mine, mask, out=mine)
        np.bitwise_xor(part, mine, out=part)


def _row_count(n: int) -> int:
    """Locked rows of a tensor of ``n`` values, the tail (if any) counted as one."""
    return -(-n // BLOCK)


def blocked_lock(flat: torch.Tensor, secret: bytes, name: str, dither: int = 0) -> torch.Tensor:
    """The locked values of ``flat`` (1-d; at least two rows): a new tensor."""
    from advparams.keys.shuffle import apply_shuffle_, shuffle_positions

    n = flat.numel()
    rows = n // BLOCK
    perm, mask_key = split_secret(secret)
    order, h, r = _rows(perm, name, rows)
    _, rotations = _pool(perm)
    src = flat[: rows * BLOCK].view(rows, BLOCK)
    out = torch.empty_like(flat)
    dst = out[: rows * BLOCK].view(rows, BLOCK)
    start = h * (2 * BLOCK) + r
    for a in range(0, rows, CHUNK_ROWS):
        b = min(rows, a + CHUNK_ROWS)
        # locked[i, j] = original[rows[i], c] where j = pool⁻¹[h[i]][(c + r[i]) mod BLOCK]: a scatter
        idx = rotations.index_select(0, start[a:b])
        dst[a:b].scatter_(1, idx, src.index_select(0, order[a:b]))
    if n > rows * BLOCK:
        tail = flat[rows * BLOCK :].clone()
        apply_shuffle_(tail, shuffle_positions(perm, name + "#tail", tail.numel(), tail.numel()))
        out[rows * BLOCK :] = tail
    if dither:
        mask_(out, mask_key, row_keys(secret, name, _row_count(n)), dither)
    return out


def blocked_unlock(
    flat: torch.Tensor, secret: bytes, name: str, dither: int = 0, *, scratch: bool = False
) -> torch.Tensor:
    """The exact inverse of :func:`blocked_lock`: a new tensor. ``flat`` is not changed,
    unless ``scratch`` says it may be (its dither is then undone in place: no copy)."""
    perm, mask_key = split_secret(secret)
    keys = row_keys(secret, name, _row_count(flat.numel())) if dither else None
    return unlock_with(flat, perm, mask_key, keys, name, dither, scratch=scratch)


def unlock_with(
    flat: torch.Tensor,
    perm: bytes,
    mask_key: bytes,
    keys: np.ndarray | None,
    name: str,
    dither: int = 0,
    *,
    scratch: bool = False,
) -> torch.Tensor:
    """:func:`blocked_unlock` from the split secret's parts and the rows' mask keys
    (``[rows, ROW_KEY]`` uint8, the tail's last), as a user key holds them: a row whose key
    is not the owner's comes out with its dither band as noise."""
    from advparams.keys.shuffle import shuffle_positions, undo_shuffle_

    n = flat.numel()
    rows = n // BLOCK
    order, h, r = _rows(perm, name, rows)
    _, rotations = _pool(perm)
    work = flat.clone() if dither and not scratch else flat
    if dither:
        if keys is None or keys.shape != (_row_count(n), ROW_KEY):
            raise ValueError(f"{name}: {_row_count(n)} row keys of {ROW_KEY} bytes needed")
        mask_(work, mask_key, keys, dither)
    src = work[: rows * BLOCK].view(rows, BLOCK)
    out = torch.empty_like(flat)
    dst = out[: rows * BLOCK].view(rows, BLOCK)
    start = h * (2 * BLOCK) + r  # row i's index: pool⁻¹[h[i]][(k + r[i]) mod BLOCK]
    for a in range(0, rows, CHUNK_ROWS):
        b = min(rows, a + CHUNK_ROWS)
        idx = rotations.index_select(0, start[a:b])
        dst.index_copy_(0, order[a:b], torch.gather(src[a:b], 1, idx))
    if n > rows * BLOCK:
        tail = work[rows * BLOCK :].clone()
        undo_shuffle_(tail, shuffle_positions(perm, name + "#tail", tail.numel(), tail.numel()))
        out[rows * BLOCK :] = tail
    return out


def source_rows(perm: bytes, name: str, numel: int) -> torch.Tensor:
    """Which original run each locked row holds (``rows`` of step 1)."""
    return _rows(perm, name, numel // BLOCK)[0]


_MARK = b"advparams-blocked-mark-v1\0"


def variant_row_keys(secret: bytes, name: str, rows: torch.Tensor, bit: int) -> np.ndarray:
    """The two stand-in mask keys (``bit`` 0 or 1) of locked rows ``rows`` that carry a user's
    mark: ``AES-256-ECB`` under ``SHA-256(b"advparams-blocked-mark-v1\\0" + secret + name)``
    of ``le64(row) + byte(bit) + 7 zero bytes``, the first 12 bytes (``[len(rows), ROW_KEY]``)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = hashlib.sha256(_MARK + secret + name.encode("utf-8")).digest()
    blocks = np.zeros((rows.numel(), 16), dtype=np.uint8)
    blocks[:, :8] = rows.numpy().astype("<u8")[:, None].view(np.uint8)
    blocks[:, 8] = bit
    out = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(blocks.tobytes())
    return np.frombuffer(out, dtype=np.uint8).reshape(-1, 16)[:, :ROW_KEY].copy()


__all__ = [
    "BLOCK",
    "POOL",
    "ROW_KEY",
    "blocked_lock",
    "blocked_unlock",
    "is_blocked",
    "mask_",
    "row_keys",
    "source_rows",
    "split_secret",
    "unlock_with",
    "variant_row_keys",
]
