"""Blocked keyed shuffles (layout 2): bit-exact, every value moved, and the draw exactly as
``advparams.keys.blocked`` documents it."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch

from advparams.errors import KeyFileError
from advparams.keys import key_from_bytes, key_to_bytes
from advparams.keys.blocked import BLOCK, POOL, blocked_lock, blocked_unlock
from advparams.keys.key import Key, Shuffle
from advparams.keys.shuffle import apply_shuffle_, shuffle_positions
from advparams.schemes import SCHEMES

SECRET = bytes(range(32))


@pytest.mark.parametrize(
    ("dtype", "numel", "dither"),
    [(torch.float32, 3 * BLOCK + 17, 23), (torch.bfloat16, 2 * BLOCK, 7), (torch.float64, 5 * BLOCK, 52),
     (torch.float16, 3 * BLOCK - 1, 10), (torch.float32, 2 * BLOCK + 5, 0)],
)  # fmt: skip
def test_a_blocked_shuffle_moves_every_value_and_unlocks_bit_exactly(dtype, numel, dither) -> None:
    x = torch.randn(numel, generator=torch.Generator().manual_seed(numel)).to(dtype)
    s = Shuffle("layer.weight", numel, numel, dither, layout=2)
    locked = x.clone()
    s.lock_(locked, SECRET)
    assert float((locked == x).double().mean()) < 0.01  # a value stays only by chance
    back = locked.clone()
    s.unlock_(back, SECRET)
    assert torch.equal(back.view(torch.uint8), x.view(torch.uint8))
    if dither == 0:  # the values only move: each locked row holds one original row's values
        rows = numel // BLOCK
        got = locked[: rows * BLOCK].view(rows, BLOCK).sort(dim=1).values
        want = x[: rows * BLOCK].view(rows, BLOCK).sort(dim=1).values
        assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, want.tolist()))
    other = x.clone()
    Shuffle("other.weight", numel, numel, dither, layout=2).lock_(other, SECRET)
    assert not torch.equal(other, locked)  # each tensor's draw depends on its name


def _reference(x: np.ndarray, secret: bytes, name: str, bits: int = 0) -> np.ndarray:
    """The documented draw, written out row by row (float32)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    n = x.size
    rows = n // BLOCK
    perm = hashlib.sha256(b"advparams-blocked-perm-v1\0" + secret).digest()
    stream = hashlib.shake_256(b"advparams-blocked-v1\0" + perm + name.encode()).digest(11 * rows)
    order = np.argsort(np.frombuffer(stream[: 8 * rows], dtype="<i8"), kind="stable")
    h = np.frombuffer(stream[8 * rows : 9 * rows], dtype=np.uint8)
    r = np.frombuffer(stream[9 * rows :], dtype="<u2") % BLOCK
    words = np.frombuffer(hashlib.shake_256(b"advparams-blocked-pool-v1\0" + perm).digest(8 * POOL * BLOCK), "<i8")
    pool = np.argsort(words.reshape(POOL, BLOCK), axis=1, kind="stable")
    out = np.empty_like(x)
    for i in range(rows):
        for j in range(BLOCK):
            out[i * BLOCK + j] = x[order[i] * BLOCK + (pool[h[i]][j] - r[i]) % BLOCK]
    tail = torch.from_numpy(x[rows * BLOCK :].copy())
    apply_shuffle_(tail, shuffle_positions(perm, name + "#tail", tail.numel(), tail.numel()))
    out[rows * BLOCK :] = tail.numpy()
    if bits:
        mask = hashlib.sha256(b"advparams-blocked-mask-v1\0" + secret).digest()
        rowkey = hashlib.sha256(b"advparams-blocked-rows-v1\0" + secret + name.encode()).digest()
        ints = out.view("<u4")
        for i in range(-(-n // BLOCK)):
            key = Cipher(algorithms.AES(rowkey), modes.ECB()).encryptor().update(i.to_bytes(8, "little") + bytes(8))
            aes = Cipher(algorithms.AES(mask), modes.ECB()).encryptor()
            for j in range(i * BLOCK, min(n, (i + 1) * BLOCK)):
                c = (j - i * BLOCK) // 4  # four float32 words per 16-byte block
                word = aes.update(key[:12] + c.to_bytes(4, "little"))[4 * (j % 4) : 4 * (j % 4) + 4]
                ints[j] ^= int.from_bytes(word, "little") & ((1 << bits) - 1)
    return out


@pytest.mark.parametrize("bits", [0, 23])
def test_the_draw_is_the_documented_one(bits) -> None:
    x = np.arange(2 * BLOCK + 9, dtype=np.float32)
    got = blocked_lock(torch.from_numpy(x), SECRET, "w", bits).numpy()
    assert np.array_equal(got.view("<u4"), _reference(x, SECRET, "w", bits).view("<u4"))
    assert np.array_equal(blocked_unlock(torch.from_numpy(got), SECRET, "w", bits).numpy(), x)


def test_a_key_with_blocked_shuffles_round_trips_and_a_bad_layout_is_refused() -> None:
    shuffles = (Shuffle("a", 2 * BLOCK, 2 * BLOCK, 0, 2), Shuffle("b", 100, 100, 23), Shuffle("c", 3 * BLOCK, 10))
    key = Key((), "sha256:" + "0" * 64, "sha256:" + "1" * 64, "hardened", shuffles=shuffles, secret=os.urandom(32))
    again = key_from_bytes(key_to_bytes(key))
    assert again.shuffles == shuffles
    with pytest.raises(KeyFileError, match="blocked shuffle moves all"):
        Shuffle("d", 3 * BLOCK, 3 * BLOCK - 1, 0, 2)
    with pytest.raises(KeyFileError, match="blocked shuffle moves all"):
        Shuffle("e", BLOCK, BLOCK, 0, 2)  # one row: too small
    with pytest.raises(KeyFileError, match="unknown layout"):
        Shuffle("f", 3 * BLOCK, 3 * BLOCK, 0, 3)


def test_the_hardened_lock_shuffles_large_tensors_in_blocks_by_default() -> None:
    from advparams.data.synthetic import make_synthetic

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 16, 300), torch.nn.ReLU(),
                                torch.nn.Linear(300, 10))  # fmt: skip
    data = make_synthetic(200)
    result = SCHEMES.build("hardened", {"num_samples": 100, "check_samples": 0, "draws": 1}).lock(model, data)
    layouts = {s.name: s.layout for s in result.key.shuffles}
    assert layouts == {"1.weight": 2, "1.bias": 1, "3.weight": 1, "3.bias": 1}  # 76,800 values; the rest small
    uniform = SCHEMES.build("hardened", {"num_samples": 100, "check_samples": 0, "draws": 1, "layout": "uniform"})
    assert {s.layout for s in uniform.lock(model, data).key.shuffles} == {1}
    with pytest.raises(Exception, match="fraction 1"):
        SCHEMES.build("hardened", {"layout": "blocked", "fraction": 0.5})
