import copy

import pytest
import torch

from advparams.errors import ConfigError
from advparams.fingerprint import model_fingerprint
from advparams.testing import TinyConvNet, state_equal, tiny_trained_classifier
from advparams.tracing import MarkConfig, mark_copy, mark_plan, observe, trace_weights

SECRET = bytes(range(32))
USERS = [f"user{i:03d}" for i in range(100)]


@pytest.fixture(scope="module")
def trained():
    return tiny_trained_classifier(seed=0)


def average(*models: torch.nn.Module) -> torch.nn.Module:
    out = copy.deepcopy(models[0])
    states = [m.state_dict() for m in models]
    out.load_state_dict({k: sum(s[k] for s in states) / len(states) for k in states[0]})
    return out


def test_a_users_copy_follows_bit_for_bit_from_the_secret_the_weights_and_the_id() -> None:
    model = TinyConvNet()
    before = model_fingerprint(model)
    plan = mark_plan(model, SECRET, MarkConfig(positions=300))
    again = mark_plan(copy.deepcopy(model), SECRET, MarkConfig(positions=300))
    a, b = mark_copy(model, plan, "alice"), mark_copy(model, again, "alice")
    assert model_fingerprint(a) == model_fingerprint(b)
    assert model_fingerprint(model) == before  # the input is not changed
    assert model_fingerprint(mark_copy(model, plan, "bob")) != model_fingerprint(a)
    other = mark_plan(model, bytes(32), MarkConfig(positions=300))
    assert model_fingerprint(mark_copy(model, other, "alice")) != model_fingerprint(a)
    # exactly the planned positions move, each by its amplitude, in the code's direction
    moved = sum(
        int((pa != p0).sum()) for pa, p0 in zip(a.state_dict().values(), model.state_dict().values(), strict=True)
    )
    assert moved == 300
    assert observe(a, model, plan).abs().tolist() == pytest.approx([1.0] * 300, abs=1e-3)


def test_planned_positions_avoid_the_locks_and_stay_in_weight_tensors() -> None:
    model = TinyConvNet()
    state = model.state_dict()
    name = next(n for n, t in state.items() if t.dim() >= 2)
    locked = {name: torch.arange(state[name].numel())}  # every position of one tensor
    plan = mark_plan(model, SECRET, MarkConfig(positions=200), exclude=locked)
    assert name not in plan.names
    assert all(state[n].dim() >= 2 for n in plan.names)
    assert len({(n, int(i)) for n, i in zip(plan.names, plan.indices, strict=True)}) == 200
    with pytest.raises(ConfigError, match="markable weights: create a roster with --set positions=N"):
        mark_plan(model, SECRET, MarkConfig(positions=10**6))
    with pytest.raises(ConfigError):
        MarkConfig(strength=0.0)


def test_a_copy_is_traced_to_its_user_and_not_to_the_others(trained) -> None:
    model, data = trained
    plan = mark_plan(model, SECRET, MarkConfig(positions=1024))
    for user in ("user007", "user042"):
        result = trace_weights(mark_copy(model, plan, user), model, plan, USERS)
        assert result.accused == (user,)
        assert result.top == user
    # the original names no one, and neither does a copy with its marks pruned to zero
    assert trace_weights(model, model, plan, USERS).accused == ()
    pruned = mark_copy(model, plan, "user007")
    with torch.no_grad():
        for n, i in zip(plan.names, plan.indices.tolist(), strict=True):
            pruned.state_dict()[n].view(-1)[i] = 0.0
    assert trace_weights(pruned, model, plan, USERS).accused == ()


def test_averaged_copies_of_colluders_name_one_of_them_and_no_innocent(trained) -> None:
    model, _ = trained
    plan = mark_plan(model, SECRET, MarkConfig(positions=1400))
    for colluders in (("user001", "user002"), ("user010", "user020", "user030")):
        mixed = average(*(mark_copy(model, plan, u) for u in colluders))
        accused = trace_weights(mixed, model, plan, USERS).accused
        assert accused and set(accused) <= set(colluders)


def test_the_marks_leave_the_models_answers_alone(trained) -> None:
    model, data = trained
    plan = mark_plan(model, SECRET, MarkConfig(positions=1024))
    x = data.tensors()[0]
    with torch.no_grad():
        clean = model(x).argmax(1)
        marked = mark_copy(model, plan, "user003")(x).argmax(1)
    assert float((clean == marked).double().mean()) >= 0.99
    assert not state_equal(mark_copy(model, plan, "user003"), model)
