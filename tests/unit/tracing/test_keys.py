import pytest
import torch

from advparams import AdvParams, unlock
from advparams.errors import KeyFileError, KeyMismatchError
from advparams.fingerprint import model_fingerprint
from advparams.keys.io import key_from_bytes, key_to_bytes
from advparams.schemes.hardened import Hardened
from advparams.testing import state_equal, tiny_trained_classifier
from advparams.tracing import MarkConfig, issue_user_key, trace_weights, user_copy, user_plan

USERS = [f"user{i:03d}" for i in range(100)]
MARK = MarkConfig(positions=1024)


@pytest.fixture(scope="module")
def locked():
    model, data = tiny_trained_classifier(seed=0)
    result = Hardened(reproducible=True, draws=1, dither=23).lock(model, data)
    return model, data, result


def test_a_user_key_unlocks_that_users_copy_bit_for_bit_and_the_owner_key_the_original(locked) -> None:
    model, _, result = locked
    before = model_fingerprint(result.model)
    key = issue_user_key(result.model, result.key, "user007", MARK)
    copy_ = unlock(result.model, key)
    assert model_fingerprint(result.model) == before
    assert key.original_fingerprint == model_fingerprint(copy_)  # the key names the user's copy
    assert model_fingerprint(copy_) == model_fingerprint(user_copy(result.model, result.key, "user007", MARK))
    again = key_from_bytes(key_to_bytes(issue_user_key(result.model, result.key, "user007", MARK)))
    assert model_fingerprint(unlock(result.model, again)) == model_fingerprint(copy_)
    assert not state_equal(copy_, model)
    assert state_equal(unlock(result.model, result.key), model)  # the owner key: the original
    assert not key.secret and not key.shuffles  # a user key holds no secret
    assert key.info["user"] == "user007"


def test_a_user_copy_is_traced_to_its_user(locked) -> None:
    model, data, result = locked
    copy_ = unlock(result.model, issue_user_key(result.model, result.key, "user042", MARK))
    plan = user_plan(result.key, model, MARK)
    assert trace_weights(copy_, model, plan, USERS).accused == ("user042",)
    x = data.tensors()[0]
    with torch.no_grad():
        agree = (copy_(x).argmax(1) == model(x).argmax(1)).double().mean()
    assert float(agree) >= 0.99


def test_tampered_and_foreign_user_keys_are_refused(locked) -> None:
    model, data, result = locked
    raw = bytearray(key_to_bytes(issue_user_key(result.model, result.key, "user001", MARK)))
    raw[-5] ^= 0x01
    with pytest.raises(KeyFileError, match="digest|corrupt"):
        key_from_bytes(bytes(raw))
    other = Hardened(reproducible=True, draws=1, seed=1, dither=23).lock(model, data)
    foreign = issue_user_key(other.model, other.key, "user001", MARK)
    with pytest.raises(KeyMismatchError):
        unlock(result.model, foreign)


def test_a_sparse_lock_cannot_issue_user_keys(locked) -> None:
    model, data, _ = locked
    sparse = AdvParams().lock(model, data)
    with pytest.raises(KeyMismatchError, match="hardened"):
        issue_user_key(sparse.model, sparse.key, "user001", MARK)
