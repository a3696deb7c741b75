"""LSB steganography and user fingerprints."""

import json
import os
import stat

import pytest
import torch

from advparams.errors import AdvParamsError, OutputExistsError, UserTableError
from advparams.watermarks import UserTable, hide_bits, reveal_bits


def _images(n=5, c=1, h=16, w=16, seed=0):
    return torch.randint(0, 256, (n, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.parametrize("plane", [0, 3, 7])
def test_hide_reveal_round_trip_changes_only_that_plane(plane) -> None:
    images = _images(c=3)
    bits = torch.randint(0, 2, (5, 300), generator=torch.Generator().manual_seed(1)).bool()
    stego = hide_bits(images, bits, plane=plane)
    assert torch.equal(reveal_bits(stego, 300, plane=plane), bits)
    diff = stego.int() ^ images.int()
    assert bool(((diff & ~(1 << plane)) == 0).all())  # no other bit moved
    assert int(diff.reshape(5, -1)[:, 300:].abs().sum()) == 0  # pixels past the message untouched
    assert stego.dtype == torch.uint8 and not torch.equal(images, stego)
    assert torch.equal(images, _images(c=3))  # the input is not modified


def test_one_message_for_all_images() -> None:
    bits = torch.tensor([1, 1, 0, 1, 0, 0, 1, 0], dtype=torch.bool)
    got = reveal_bits(hide_bits(_images(), bits), 8)
    assert got.shape == (5, 8) and all(torch.equal(row, bits) for row in got)


def test_message_too_long_or_bad_input() -> None:
    with pytest.raises(AdvParamsError, match="does not fit"):
        hide_bits(_images(h=4, w=4), torch.ones(17, dtype=torch.bool))
    with pytest.raises(AdvParamsError, match="uint8"):
        hide_bits(_images().float(), torch.ones(4, dtype=torch.bool))
    with pytest.raises(AdvParamsError, match="bit-plane"):
        reveal_bits(_images(), 4, plane=8)


def test_fingerprints_are_unique_and_authenticate() -> None:
    table = UserTable()
    fps = {u: table.register(u) for u in ("alice", "bob", "carol", "dave")}
    for u, fp in fps.items():
        assert fp.shape == (256,) and fp.dtype == torch.bool
        assert table.authenticate(fp).user == u
        for v, other in fps.items():
            if v != u:
                assert int((fp ^ other).sum()) > 2 * table.max_errors
    # Through key images: hide alice's fingerprint, read it back.
    stego = hide_bits(_images(), fps["alice"])
    assert {table.authenticate(b).user for b in reveal_bits(stego, 256)} == {"alice"}


def test_unknown_and_forged_fingerprints_are_rejected() -> None:
    table = UserTable()
    alice = table.register("alice")
    table.register("bob")
    stranger = torch.randint(0, 2, (256,), generator=torch.Generator().manual_seed(5)).bool()
    assert table.authenticate(stranger).user is None
    noisy = alice.clone()
    noisy[:10] = ~noisy[:10]  # within max_errors: still alice
    assert table.authenticate(noisy).user == "alice" and table.authenticate(noisy).errors == 10
    forged = alice.clone()
    forged[:40] = ~forged[:40]  # too far
    auth = table.authenticate(forged)
    assert auth.user is None and auth.nearest == "alice" and auth.errors == 40
    with pytest.raises(UserTableError, match="already"):
        table.register("alice")
    with pytest.raises(UserTableError, match="unknown"):
        table.fingerprint("eve")
    with pytest.raises(UserTableError, match="256-bit"):
        table.authenticate(alice[:100])


def test_table_file_round_trip_private_and_no_overwrite(tmp_path) -> None:
    table = UserTable(bits=128, max_errors=8)
    fps = {u: table.register(u) for u in ("alice", "bob")}
    path = tmp_path / "users.json"
    table.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = UserTable.load(path)
    assert again.users == ["alice", "bob"] and again.bits == 128 and again.max_errors == 8
    assert all(torch.equal(again.fingerprint(u), fp) for u, fp in fps.items())
    with pytest.raises(OutputExistsError):
        table.save(path)
    body = json.loads(path.read_text())
    hexed = body["users"]["bob"]
    body["users"]["bob"] = ("1" if hexed[0] != "1" else "2") + hexed[1:]  # a forged fingerprint
    path.write_text(json.dumps(body))
    with pytest.raises(UserTableError, match="digest"):
        UserTable.load(path)
    path.write_text("{not json")
    with pytest.raises(UserTableError, match="corrupt"):
        UserTable.load(path)
    with pytest.raises(UserTableError, match="does not exist"):
        UserTable.load(tmp_path / "nope.json")
