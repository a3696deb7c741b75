import torch

from advparams.fingerprint import model_fingerprint, state_fingerprint


def test_identical_states_match_and_any_bit_differs() -> None:
    a = {"w": torch.arange(6.0).reshape(2, 3), "n": torch.tensor(3)}
    b = {k: v.clone() for k, v in a.items()}
    assert state_fingerprint(a) == state_fingerprint(b)
    b["w"][1, 2] = torch.nextafter(b["w"][1, 2], torch.tensor(100.0))  # one ulp
    assert state_fingerprint(a) != state_fingerprint(b)


def test_dtype_shape_and_name_are_covered() -> None:
    w = torch.zeros(4)
    base = state_fingerprint({"w": w})
    assert base != state_fingerprint({"w": w.half()})
    assert base != state_fingerprint({"w": w.reshape(2, 2)})
    assert base != state_fingerprint({"v": w})
    assert base != state_fingerprint({"w": torch.tensor([0.0, 0.0, 0.0, -0.0])})  # sign bit


def test_bfloat16_and_buffers(fresh_net) -> None:
    fp = model_fingerprint(fresh_net)
    fresh_net.bn.running_mean += 1  # a buffer, not a parameter
    assert model_fingerprint(fresh_net) != fp
    assert model_fingerprint(fresh_net.to(torch.bfloat16)).startswith("sha256:")
