"""Black-box tracing from the answers to secret queries, and the query and answers files."""

import copy
import json

import pytest
import torch

from advparams.errors import DataError, QueryFileError
from advparams.keys import unlock
from advparams.schemes.hardened import Hardened
from advparams.testing import tiny_trained_classifier
from advparams.tracing import (
    MarkConfig,
    QueryConfig,
    QueryTracer,
    answer_queries,
    issue_user_key,
    load_queries,
    make_queries,
    mark_copy,
    mark_plan,
    owner_queries,
    read_answers,
    save_queries,
    trace_answers,
    user_plan,
)
from advparams.tracing.queryfile import queries_from_bytes, queries_to_bytes

SECRET = bytes(range(32))
USERS = [f"user{i:03d}" for i in range(20)]
CONFIG = QueryConfig(queries=1024)


@pytest.fixture(scope="module")
def setup():
    model, data = tiny_trained_classifier(seed=0)
    plan = mark_plan(model, SECRET, MarkConfig(positions=1024))
    queries = make_queries(model, plan, data.tensors()[0], CONFIG)
    return model, data, plan, queries, QueryTracer(model, plan, queries, USERS, CONFIG)


def test_queries_sit_where_the_users_copies_disagree(setup) -> None:
    model, _, plan, queries, tracer = setup
    assert queries.shape[0] == CONFIG.queries and queries.dtype == torch.float32
    # most queries are answered differently by some users: each one splits the roster
    answers = torch.stack([answer_queries(mark_copy(model, plan, u), queries) for u in USERS])
    split = (answers != answers.mode(0).values).double().mean(0)
    assert float((split > 0).double().mean()) > 0.5
    # and the users' answers are those of the centre's two top classes
    top = (answers == tracer.classes[:, 0]) | (answers == tracer.classes[:, 1])
    assert float(top.double().mean()) > 0.95


def test_the_observation_reads_the_marks_back(setup) -> None:
    model, _, plan, queries, tracer = setup
    # first-order check of the gradients: a copy's margins follow G (s - (2p - 1))
    copy3 = mark_copy(model, plan, USERS[3])
    with torch.no_grad():
        logits = copy3(queries)
    c = tracer.classes
    margin = logits.gather(1, c[:, :1])[:, 0] - logits.gather(1, c[:, 1:])[:, 0]
    s = plan.code.codeword(USERS[3]).double() * 2 - 1
    predicted = tracer.gradients @ (s - (2 * plan.code.biases() - 1))
    assert float(torch.corrcoef(torch.stack([margin.double(), predicted]))[0, 1]) > 0.9
    # and the observation correlates with the copy's marks, not with another user's
    y = tracer.observation(answer_queries(copy3, queries))
    other = plan.code.codeword(USERS[4]).double() * 2 - 1
    assert float(y.abs().max()) == 1.0
    own = float(torch.corrcoef(torch.stack([y, s]))[0, 1])
    assert own > 0.15 and own > 3 * abs(float(torch.corrcoef(torch.stack([y, other]))[0, 1])), own


def test_a_copys_answers_name_its_user_and_no_other(setup) -> None:
    model, _, plan, queries, tracer = setup
    for user in (USERS[7], USERS[12]):
        result = tracer.trace(answer_queries(mark_copy(model, plan, user), queries), 1e-3)
        assert result.accused == (user,) and result.queries == CONFIG.queries
    # the original, and a model answering at random, name nobody
    assert tracer.trace(answer_queries(model, queries), 1e-3).accused == ()
    noise = torch.randint(0, 10, (len(queries),), generator=torch.Generator().manual_seed(0))
    assert tracer.trace(noise, 1e-3).accused == ()
    # fewer queries, a smaller margin; a stricter rate, a higher threshold
    copy7 = answer_queries(mark_copy(model, plan, USERS[7]), queries)
    few, full = tracer.trace(copy7, 1e-3, limit=32), tracer.trace(copy7, 1e-3)
    assert few.queries == 32 and few.threshold < full.threshold
    assert tracer.trace(copy7, 1e-9).threshold > full.threshold
    with pytest.raises(QueryFileError, match="one per query"):
        tracer.trace(copy7[:10], 1e-3)


def test_a_tracer_from_its_saved_state_gives_the_same_result(setup) -> None:
    model, _, plan, queries, tracer = setup
    again = QueryTracer.from_state(tracer.state(), plan, USERS, CONFIG)
    a = answer_queries(mark_copy(model, plan, USERS[2]), queries)
    assert again.trace(a, 1e-3) == tracer.trace(a, 1e-3)
    state = tracer.state()
    state["gradients"] = state["gradients"][:, :10]
    with pytest.raises(ValueError, match="does not fit"):
        QueryTracer.from_state(state, plan, USERS)


def test_a_model_torch_func_cannot_map_gets_the_same_gradients(setup, monkeypatch) -> None:
    model, _, plan, queries, _ = setup
    from advparams.tracing import queries as module

    looped_calls = []
    loop = module._looped_gradients
    monkeypatch.setattr(module, "_looped_gradients", lambda *a: looped_calls.append(1) or loop(*a))
    base = type(model)

    class Gated(base):  # type: ignore[misc,valid-type]
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool(x.abs().sum() >= 0):  # control flow on a tensor: vmap raises RuntimeError
                return super().forward(x)
            return -super().forward(x)

    gated = copy.deepcopy(model)
    gated.__class__ = Gated
    few = queries[:48]
    mapped = QueryTracer(model, plan, few, USERS, CONFIG)
    looped = QueryTracer(gated, plan, few, USERS, CONFIG)
    assert len(looped_calls) == 1  # the mapped model took the torch.func path, the gated one not
    assert torch.equal(looped.classes, mapped.classes)
    assert float(looped.gradients.abs().max()) > 0
    assert torch.allclose(looped.gradients, mapped.gradients, rtol=1e-4, atol=1e-7)


def test_a_model_with_one_answer_has_no_boundary_to_query(setup) -> None:
    model, data, plan, _, _ = setup

    class Constant(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x):
            return torch.zeros(len(x), 10).index_fill_(1, torch.tensor([3]), 1.0) + 0 * self.inner(x)

    with pytest.raises(DataError, match="same label"):
        make_queries(Constant(), mark_plan(Constant(), SECRET, MarkConfig(positions=64)), data.tensors()[0], CONFIG)


@pytest.fixture(scope="module")
def owner():
    model, data = tiny_trained_classifier(seed=0)
    locked = Hardened(reproducible=True, draws=1, dither=23).lock(model, data)
    mark = MarkConfig(positions=1024)
    qs = owner_queries(locked.model, locked.key, mark, data.tensors()[0], CONFIG)
    return model, data, locked, mark, qs


def test_owner_traces_an_issued_copy_from_its_answers_or_a_callable(owner, tmp_path) -> None:
    _, _, locked, mark, qs = owner
    copy_ = unlock(locked.model, issue_user_key(locked.model, locked.key, USERS[4], mark))
    labels = answer_queries(copy_, qs.inputs)
    assert trace_answers(labels, qs, locked.model, locked.key, USERS).accused == (USERS[4],)
    assert trace_answers(copy_, qs, locked.model, locked.key, USERS).accused == (USERS[4],)
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({"answers": labels.tolist()}))
    assert torch.equal(read_answers(path, len(labels)), labels)
    # queries made under another owner key are refused
    other = Hardened(reproducible=True, draws=1, dither=23, seed=1).lock(owner[0], owner[1])
    with pytest.raises(QueryFileError, match="another owner key"):
        trace_answers(labels, qs, other.model, other.key, USERS)
    with pytest.raises(QueryFileError, match="one label per query"):
        trace_answers(labels[:-1], qs, locked.model, locked.key, USERS)


def test_a_limit_asks_and_differentiates_only_the_first_queries(owner) -> None:
    _, _, locked, mark, qs = owner
    copy_ = unlock(locked.model, issue_user_key(locked.model, locked.key, USERS[4], mark))
    asked: list[int] = []

    def api(x: torch.Tensor) -> torch.Tensor:
        asked.append(len(x))
        return answer_queries(copy_, x)

    done: list[int] = []
    result = trace_answers(api, qs, locked.model, locked.key, USERS, limit=600, progress=done.append)
    assert sum(asked) == 600 and result.queries == 600
    assert done and done[-1] == 600 and done == sorted(done)
    # the same decision and scores as every query's gradients with only the first 600 counted
    full = trace_answers(answer_queries(copy_, qs.inputs), qs, locked.model, locked.key, USERS)
    assert full.queries == len(qs.inputs) and full.accused == (USERS[4],)
    original = unlock(locked.model, locked.key)
    tracer = QueryTracer(original, user_plan(locked.key, original, mark), qs.inputs, USERS, CONFIG)
    again = tracer.trace(answer_queries(copy_, qs.inputs), 1e-3, limit=600)
    assert again.accused == result.accused
    assert again.scores == pytest.approx(result.scores, rel=1e-6, abs=1e-6)
    # a callable that answers fewer queries than it was asked is refused
    with pytest.raises(QueryFileError, match="one label per query"):
        trace_answers(lambda x: api(x)[:-1], qs, locked.model, locked.key, USERS, limit=100)


@pytest.mark.parametrize(
    "content",
    ["[1, 2]", '{"answers": [true, 1]}', "[-1]", '{"other": []}', "not json", "[[1]]"],
)
def test_bad_answers_files_are_refused(tmp_path, content) -> None:
    path = tmp_path / "a.json"
    path.write_text(content.replace("[-1]", json.dumps([-1] + [0] * 2)))
    with pytest.raises(QueryFileError):
        read_answers(path, 3)


def test_query_files_round_trip_and_refuse_edits(owner, tmp_path) -> None:
    _, _, _, _, qs = owner
    path = save_queries(qs, tmp_path / "q.safetensors")
    back = load_queries(path)
    assert torch.equal(back.inputs, qs.inputs) and back.code == qs.code and back.config == qs.config
    assert path.stat().st_mode & 0o077 == 0  # owner-only
    with pytest.raises(Exception, match="exists"):
        save_queries(qs, path)
    save_queries(qs, path, force=True)
    blob = bytearray(queries_to_bytes(qs))
    blob[-5] ^= 0xFF  # a changed input
    with pytest.raises(QueryFileError, match="digest"):
        queries_from_bytes(bytes(blob))
    with pytest.raises(QueryFileError):
        queries_from_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    other = tmp_path / "other.txt"
    other.write_text("not mine")
    with pytest.raises(Exception, match="exists|not"):
        save_queries(qs, other, force=True)
    assert other.read_text() == "not mine"
