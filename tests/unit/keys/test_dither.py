"""Dithered shuffles (key file version 3): the locked tensor holds none of the original's
values, only their signs and binades, and unlocking is still bit-exact."""

import copy
import hashlib
import json

import numpy as np
import pytest
import torch

from advparams.errors import KeyFileError
from advparams.fingerprint import model_fingerprint
from advparams.keys import Key, Shuffle, key_from_bytes, key_to_bytes, unlock
from advparams.keys.io import key_metadata
from advparams.keys.shuffle import MANTISSA_BITS, dither_masks
from advparams.schemes.hardened import Hardened
from advparams.testing import TinyConvNet, state_equal

SECRET = bytes(range(32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_a_dithered_shuffle_changes_every_moved_mantissa_and_unlocks_bit_exact(dtype) -> None:
    x = (torch.randn(5000, dtype=torch.float64) * 0.1).to(dtype)
    s = Shuffle("w", 5000, 5000, dither=52 if dtype == torch.float64 else 23)
    y = x.clone()
    s.lock_(y, SECRET)
    # the locked values are not the original's, moved: most sorted values differ
    assert float((y.float().sort().values != x.float().sort().values).double().mean()) > 0.5
    if dtype in (torch.float32, torch.float64):  # and few appear among the original's at all
        assert np.intersect1d(y.double().numpy(), x.double().numpy()).size < 0.05 * 5000
    # signs and binades are kept (the dither only touches the mantissa)
    assert torch.equal(y.float().sort().values.sign(), x.float().sort().values.sign())
    s.unlock_(y, SECRET)
    assert torch.equal(y.view(torch.uint8), x.view(torch.uint8))


def test_masks_follow_the_documented_stream() -> None:
    stream = hashlib.shake_256(b"advparams-dither-v1\0" + SECRET + b"conv.weight").digest(8 * 10)
    words = np.frombuffer(stream, dtype="<u8") & np.uint64((1 << 23) - 1)
    got = dither_masks(SECRET, "conv.weight", 10, torch.float32, 23)
    assert got.dtype == torch.int32 and got.tolist() == words.astype(np.int64).tolist()
    assert int(dither_masks(SECRET, "w", 1000, torch.float16, 23).max()) < 2 ** MANTISSA_BITS[torch.float16]


def test_dithered_keys_are_version_3_and_round_trip() -> None:
    model = TinyConvNet()
    locked = Hardened(reproducible=True, draws=1, dither=23).lock(model, _data())
    key = locked.key
    assert all(s.dither == 23 for s in key.shuffles)
    blob = key_to_bytes(key)
    assert key_metadata(blob)["version"] == "3"
    back = key_from_bytes(blob)
    assert [s.dither for s in back.shuffles] == [23] * len(key.shuffles)
    assert state_equal(unlock(locked.model, back), model)
    # the locked weights differ from a plain shuffle's, which holds the original's values
    plain = Hardened(reproducible=True, draws=1).lock(model, _data())
    assert key_metadata(key_to_bytes(plain.key))["version"] == "2"
    assert model_fingerprint(plain.model) != model_fingerprint(locked.model)
    w = next(n for n, t in model.state_dict().items() if t.dim() >= 2)
    original = model.state_dict()[w].reshape(-1)
    assert torch.equal(plain.model.state_dict()[w].reshape(-1).sort().values, original.sort().values)
    assert not torch.equal(locked.model.state_dict()[w].reshape(-1).sort().values, original.sort().values)


def test_a_key_with_its_dither_removed_is_refused() -> None:
    model = TinyConvNet()
    key = Hardened(reproducible=True, draws=1, dither=23).lock(model, _data()).key
    plain = tuple(Shuffle(s.name, s.numel, s.count) for s in key.shuffles)
    undithered = Key(key.entries, key.original_fingerprint, key.locked_fingerprint, key.scheme,
                     shuffles=plain, secret=key.secret)  # fmt: skip
    blob = key_to_bytes(undithered)
    meta = key_metadata(blob)
    assert meta["version"] == "2" and len(json.loads(meta["shuffles"])[0]) == 3
    # a version-3 file whose shuffles carry no dither is corrupt, as is a 4-field shuffle in version 2
    from safetensors.torch import load, save

    from advparams.keys.io import key_file_digest

    tensors = load(blob)
    for version, shuffles in (
        ("3", json.loads(meta["shuffles"])),
        ("2", [[*s, 23] for s in json.loads(meta["shuffles"])]),
    ):
        forged = {**meta, "version": version, "shuffles": json.dumps(shuffles)}
        forged["digest"] = key_file_digest(forged, tensors)
        with pytest.raises(KeyFileError, match="corrupt"):
            key_from_bytes(save(tensors, metadata=forged))
    with pytest.raises(KeyFileError, match="dither"):
        Shuffle("w", 10, 10, dither=53)


def _data():
    from advparams.data import load_dataset

    return load_dataset("synthetic", "train", None)


def test_copy_of_locked_model_is_not_needed_for_the_mask_inverse() -> None:
    # the dither is its own inverse: XOR twice with the same masks gives the bits back
    x = torch.randn(100)
    s = Shuffle("w", 100, 60, dither=23)
    y = x.clone()
    s.lock_(y, SECRET)
    z = copy.deepcopy(y)
    s.unlock_(z, SECRET)
    assert torch.equal(z, x) and not torch.equal(y, x)
