import hashlib
import math

import numpy as np
import pytest
import torch

from advparams.errors import UserTableError
from advparams.tracing import TardosCode, accusation_threshold, observation, scores

SECRET = bytes(range(32))


def test_the_small_case_worked_out_by_hand() -> None:
    # biases 0.5, 0.5, 0.2, 0.8: U(1, p) = sqrt((1-p)/p), U(0, p) = -sqrt(p/(1-p)):
    # p=0.5: +1 / -1; p=0.2: +2 / -0.5; p=0.8: +0.5 / -2
    p = torch.tensor([0.5, 0.5, 0.2, 0.8], dtype=torch.float64)
    alice = torch.tensor([1, 0, 1, 0], dtype=torch.bool)
    bob = torch.tensor([0, 1, 1, 0], dtype=torch.bool)
    carol = torch.tensor([1, 0, 0, 1], dtype=torch.bool)  # innocent
    # averaged copies: where alice and bob differ the mark cancels (0), where they agree
    # it survives (the marking assumption): y = (0, 0, +1, -1)
    y = (observation(alice) + observation(bob)) / 2
    assert y.tolist() == [0.0, 0.0, 1.0, -1.0]
    s = scores(y, torch.stack([alice, bob, carol]), p)
    # alice: +1 * 2 (bit 1 at p=0.2) + -1 * -2 (bit 0 at p=0.8) = 4; bob the same;
    # carol: +1 * -0.5 + -1 * 0.5 = -1
    assert s.tolist() == pytest.approx([4.0, 4.0, -1.0])
    # a colluder's own copy scores more than the mix: 1 + 1 + 2 + 2
    assert float(scores(observation(alice), alice[None], p)[0]) == pytest.approx(6.0)


def test_codewords_follow_the_documented_stream_bit_for_bit() -> None:
    code = TardosCode(SECRET, length=16, colluders=2)
    words = np.frombuffer(hashlib.shake_256(b"advparams-tardos-v1\0" + SECRET + b"bias").digest(128), dtype="<u8")
    u = ((words >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    rt = math.asin(math.sqrt(1 / 600))
    expected = np.sin(rt + u * (math.pi / 2 - 2 * rt)) ** 2
    assert code.biases().numpy() == pytest.approx(expected, rel=1e-12)
    uw = np.frombuffer(hashlib.shake_256(b"advparams-tardos-v1\0" + SECRET + b"user\0bob").digest(128), dtype="<u8")
    ub = ((uw >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    assert code.codeword("bob").numpy().tolist() == (ub < expected).tolist()
    assert torch.equal(code.codewords(["bob"])[0], code.codeword("bob"))
    assert not torch.equal(TardosCode(SECRET, 64).codeword("bob"), TardosCode(SECRET, 64).codeword("bob2"))
    p = TardosCode(SECRET, 4096, colluders=3).biases()
    assert float(p.min()) >= 1 / 900 - 1e-12 and float(p.max()) <= 1 - 1 / 900 + 1e-12


def test_an_innocent_users_terms_have_mean_zero_and_variance_one() -> None:
    code = TardosCode(SECRET, length=64)
    p = code.biases()
    x = code.codewords([f"user{i}" for i in range(4000)])
    u = torch.where(x, torch.sqrt((1 - p) / p), -torch.sqrt(p / (1 - p)))  # y_j = 1 everywhere
    assert float(u.mean()) == pytest.approx(0.0, abs=0.05)
    assert float(u.var()) == pytest.approx(1.0, abs=0.1)


def test_the_threshold_bounds_the_false_accusations_it_states() -> None:
    code = TardosCode(SECRET, length=512)
    p = code.biases()
    colluders = code.codewords(["a", "b", "c"])
    y = torch.stack([observation(c) for c in colluders]).mean(0)
    innocents = code.codewords([f"innocent{i}" for i in range(3000)])
    s = scores(y, innocents, p)
    for rate in (0.2, 0.05):
        tau = accusation_threshold(y, p, users=1, rate=rate)
        assert float((s > tau).double().mean()) <= rate
    # the colluders' mean score is positive (Tardos): at least one of them stands out
    assert float(scores(y, colluders, p).max()) > accusation_threshold(y, p, users=3000, rate=1e-3)
    assert accusation_threshold(torch.zeros(512), p, users=10, rate=0.01) == 0.0
    with pytest.raises(ValueError, match="rate"):
        accusation_threshold(y, p, users=1, rate=0.0)


def test_code_options_are_checked() -> None:
    with pytest.raises(ValueError, match="secret"):
        TardosCode(b"short", 8)
    with pytest.raises(ValueError, match="position"):
        TardosCode(SECRET, 0)
    with pytest.raises(UserTableError, match="user id"):  # a user's mistake: one error line, not a bug
        TardosCode(SECRET, 8).codeword("")
