import pytest
import torch

from advparams import AdvParams, AdvParamsConfig
from advparams.errors import KeyFileError, KeyMismatchError, PassphraseError
from advparams.keys import Key, key_from_bytes, key_to_bytes, load_key, relock, save_key, unlock
from advparams.keys.seal import MAGIC
from advparams.testing import state_equal


@pytest.fixture(scope="module")
def locked(trained):
    model, data = trained
    return model, AdvParams(AdvParamsConfig(max_params=15)).lock(model, data)


def test_key_from_models_is_the_exact_diff(fresh_net) -> None:
    other = torch.nn.Module()
    other = type(fresh_net)()
    other.load_state_dict(fresh_net.state_dict())
    with torch.no_grad():
        other.conv.weight[0, 0, 1, 2] += 0.5
        other.head.bias[3] -= 1.0
    key = Key.from_models(fresh_net, other, scheme="manual")
    assert key.num_changed == 2
    by_name = {e.name: e for e in key.entries}
    assert by_name["conv.weight"].indices.tolist() == [0 * 9 + 1 * 3 + 2]
    assert by_name["head.bias"].indices.tolist() == [3]
    assert torch.allclose(key.perturbations()["head.bias"], torch.tensor([-1.0], dtype=torch.float64))
    assert state_equal(unlock(other, key), fresh_net)
    assert state_equal(relock(fresh_net, key), other)


def test_round_trip_bytes_and_file(locked, tmp_path) -> None:
    _, res = locked
    back = key_from_bytes(key_to_bytes(res.key))
    assert back.num_changed == res.key.num_changed and back.scheme == "advparams"
    assert back.original_fingerprint == res.key.original_fingerprint
    assert back.locked_fingerprint == res.key.locked_fingerprint and dict(back.config) == dict(res.key.config)
    for a, b in zip(back.entries, res.key.entries, strict=True):
        assert a.name == b.name and torch.equal(a.indices, b.indices)
        assert torch.equal(a.original, b.original) and torch.equal(a.locked, b.locked)
    save_key(res.key, tmp_path / "k")
    assert state_equal(unlock(res.model, load_key(tmp_path / "k")), locked[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_exact_restore_per_dtype(trained, dtype, tmp_path) -> None:
    model, data = trained
    model = type(model)()
    model.load_state_dict(trained[0].state_dict())
    model = model.to(dtype)
    res = AdvParams(AdvParamsConfig(max_params=10)).lock(model, data)
    assert res.report.params_changed > 0
    assert all(e.original.dtype == dtype for e in res.key.entries)
    save_key(res.key, tmp_path / "k")
    restored = unlock(res.model, load_key(tmp_path / "k"))
    assert state_equal(restored, model)
    assert not state_equal(res.model, model)


def test_wrong_key_refused(trained) -> None:
    model, data = trained
    a = AdvParams(AdvParamsConfig(max_params=5, seed=1)).lock(model, data)
    b = AdvParams(AdvParamsConfig(max_params=5, seed=2, exclude=("depthwise.*",))).lock(model, data)
    with pytest.raises(KeyMismatchError, match="does not belong to this model"):
        unlock(a.model, b.key)
    with pytest.raises(KeyMismatchError, match="not locked"):
        unlock(model, a.key)


def test_tampered_plain_key_detected(locked, tmp_path) -> None:
    _, res = locked
    raw = bytearray(key_to_bytes(res.key))
    raw[-3] ^= 0x01  # a bit of the last tensor's data
    with pytest.raises(KeyFileError, match="digest mismatch"):
        key_from_bytes(bytes(raw))
    with pytest.raises(KeyFileError, match="truncated"):
        key_from_bytes(key_to_bytes(res.key)[:-10])
    with pytest.raises(KeyFileError, match="not a key file"):
        key_from_bytes(b"hello")


def test_sealed_key(locked, tmp_path) -> None:
    _, res = locked
    path = tmp_path / "sealed"
    save_key(res.key, path, passphrase="correct horse")
    raw = path.read_bytes()
    assert raw.startswith(MAGIC) and key_to_bytes(res.key)[8:40] not in raw
    assert load_key(path, passphrase="correct horse").num_changed == res.key.num_changed
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        load_key(path, passphrase="wrong")
    with pytest.raises(PassphraseError, match="passphrase is needed"):
        load_key(path)
    tampered = bytearray(raw)
    tampered[-20] ^= 0x80
    path.write_bytes(bytes(tampered))
    with pytest.raises(PassphraseError, match="tampered"):
        load_key(path, passphrase="correct horse")
    # Changing the authenticated header (the scrypt cost) also fails.
    path.write_bytes(raw.replace(b'"r": 8', b'"r": 9'))
    with pytest.raises(PassphraseError):
        load_key(path, passphrase="correct horse")


def test_key_addressing_past_the_end_is_refused(locked) -> None:
    model, res = locked
    small = torch.nn.Sequential(torch.nn.Linear(2, 2))
    from advparams.keys.key import _write

    with pytest.raises(KeyMismatchError):
        _write(small, res.key, to_original=True)


def test_missing_key_file(tmp_path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key(tmp_path / "nope")


def test_key_files_are_owner_only(tmp_path, trained) -> None:
    import stat

    from advparams import AdvParams
    from advparams.keys import save_key

    model, data = trained
    key = AdvParams().lock(model, data).key
    path = save_key(key, tmp_path / "k.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
