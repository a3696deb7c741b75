"""Keyed shuffles and keys that hold them (key file version 2)."""

import hashlib
import json

import numpy as np
import pytest
import torch

from advparams.errors import KeyFileError, KeyMismatchError
from advparams.fingerprint import model_fingerprint
from advparams.keys import Key, KeyEntry, Shuffle, key_from_bytes, key_to_bytes, relock, unlock
from advparams.keys.io import key_metadata as _metadata
from advparams.keys.shuffle import apply_shuffle_, shuffle_positions, undo_shuffle_
from advparams.testing import state_equal

SECRET = bytes(range(32))


def test_positions_follow_the_documented_draw() -> None:
    # An independent implementation of the module docstring's steps 1-3, with numpy.
    numel, count = 1000, 300
    stream = hashlib.shake_256(b"advparams-shuffle-v1\0" + SECRET + b"conv.weight").digest(8 * numel)
    order = np.argsort(np.frombuffer(stream, dtype="<i8"), kind="stable")
    got = shuffle_positions(SECRET, "conv.weight", numel, count)
    assert got.tolist() == order[:count].tolist()
    assert got.unique().numel() == count


def test_positions_depend_on_secret_and_name() -> None:
    a = shuffle_positions(SECRET, "w", 500, 500)
    assert not torch.equal(a, shuffle_positions(bytes(32), "w", 500, 500))
    assert not torch.equal(a, shuffle_positions(SECRET, "v", 500, 500))
    assert torch.equal(a, shuffle_positions(SECRET, "w", 500, 500))


def test_apply_moves_every_chosen_value_and_undo_inverts() -> None:
    x = torch.randn(200)
    p = shuffle_positions(SECRET, "w", 200, 150)
    y = x.clone()
    apply_shuffle_(y, p)
    moved = (y != x).nonzero().reshape(-1)
    assert sorted(moved.tolist()) == sorted(p.tolist())  # a single cycle: no fixed point
    assert torch.equal(y.sort().values, x.sort().values)  # the same values
    undo_shuffle_(y, p)
    assert torch.equal(y, x)


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33)])
def test_secret_must_be_32_bytes(bad) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        shuffle_positions(bad, "w", 10, 5)


def _shuffled_key(original: torch.nn.Module, counts: dict[str, int]) -> tuple[torch.nn.Module, Key]:
    import copy

    locked = copy.deepcopy(original)
    state = locked.state_dict()
    shuffles = []
    for name, count in counts.items():
        t = state[name]
        s = Shuffle(name, t.numel(), count)
        flat = t.reshape(-1).clone()
        apply_shuffle_(flat, s.positions(SECRET))
        with torch.no_grad():
            t.copy_(flat.view_as(t))
        shuffles.append(s)
    key = Key(
        (),
        model_fingerprint(original),
        model_fingerprint(locked),
        "test",
        shuffles=tuple(shuffles),
        secret=SECRET,
    )
    return locked, key


def test_key_with_shuffles_round_trips_and_unlocks_bit_exact(trained) -> None:
    model, _ = trained
    names = [n for n, p in model.named_parameters() if p.numel() >= 2][:2]
    locked, key = _shuffled_key(model, {names[0]: 10, names[1]: dict(model.named_parameters())[names[1]].numel()})
    data = key_to_bytes(key)
    assert _metadata(data)["version"] == "2"
    again = key_from_bytes(data)
    assert again.shuffles == key.shuffles and again.secret == SECRET
    assert state_equal(unlock(locked, again), model)
    assert state_equal(relock(model, again), locked)
    assert again.num_changed == sum(s.count for s in key.shuffles)


def test_changes_spell_out_the_exact_diff(trained) -> None:
    model, _ = trained
    name = next(n for n, p in model.named_parameters() if p.numel() >= 50)
    locked, key = _shuffled_key(model, {name: 40})
    (spelled,) = key.changes(locked)
    diff = Key.from_models(model, locked, scheme="test").entries[0]
    assert spelled.name == diff.name == name
    assert torch.equal(spelled.indices, diff.indices)
    assert torch.equal(spelled.original, diff.original) and torch.equal(spelled.locked, diff.locked)
    assert torch.equal(key.positions()[name], diff.indices)


def test_key_without_shuffles_is_still_version_1(trained) -> None:
    from advparams import AdvParams, AdvParamsConfig

    model, data = trained
    key = AdvParams(AdvParamsConfig(max_params=3)).lock(model, data).key
    assert _metadata(key_to_bytes(key))["version"] == "1"


def test_edited_secret_is_detected(trained) -> None:
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    model, _ = trained
    name = next(n for n, p in model.named_parameters() if p.numel() >= 2)
    _, key = _shuffled_key(model, {name: 2})
    data = key_to_bytes(key)
    tensors, meta = st_load(data), _metadata(data)
    tensors["secret"] = torch.zeros(32, dtype=torch.uint8)
    with pytest.raises(KeyFileError, match="digest"):
        key_from_bytes(st_save(tensors, metadata=meta))
    meta["shuffles"] = json.dumps([[name, 10**9, 5]])
    with pytest.raises(KeyFileError):
        key_from_bytes(st_save(st_load(data), metadata=meta))


def test_shuffle_of_a_tensor_of_another_size_is_refused(trained) -> None:
    model, _ = trained
    name = next(n for n, p in model.named_parameters() if p.numel() >= 2)
    numel = dict(model.named_parameters())[name].numel()
    locked, key = _shuffled_key(model, {name: 2})
    bad = Key(
        (),
        key.original_fingerprint,
        key.locked_fingerprint,
        "test",
        shuffles=(Shuffle(name, numel + 1, 2),),
        secret=SECRET,
    )
    with pytest.raises(KeyMismatchError, match="has"):
        unlock(locked, bad)
    with pytest.raises(KeyMismatchError):
        bad.changes(locked)


def test_inconsistent_keys_are_refused() -> None:
    with pytest.raises(KeyFileError, match="secret"):
        Key((), "a", "b", "x", shuffles=(Shuffle("w", 4, 2),), secret=b"short")
    with pytest.raises(KeyFileError, match="twice"):
        Key((), "a", "b", "x", shuffles=(Shuffle("w", 4, 2), Shuffle("w", 4, 3)), secret=SECRET)
    entry = KeyEntry("w", torch.tensor([0]), torch.zeros(1), torch.ones(1))
    with pytest.raises(KeyFileError, match="both"):
        Key((entry,), "a", "b", "x", shuffles=(Shuffle("w", 4, 2),), secret=SECRET)
    with pytest.raises(KeyFileError, match="cannot move"):
        Shuffle("w", 4, 5)
