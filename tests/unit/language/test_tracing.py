"""Per-user keys and tracing on a language model: white-box from the weights, black-box
from the next-token log-probabilities or the next tokens after secret prompts."""

from __future__ import annotations

import pytest
import torch

from advparams import SCHEMES, unlock
from advparams.data.sequences import SequenceDataset
from advparams.errors import DataError
from advparams.tasks import task_quality
from advparams.tracing.keys import issue_user_key, user_plan
from advparams.tracing.mark import MarkConfig, trace_weights
from advparams.tracing.prompts import (
    PromptTracer,
    make_prompts,
    next_tokens,
    prompt_answers,
    prompt_margins,
    trace_tokens,
)
from advparams.tracing.queries import QueryConfig

USERS = [f"user{i}" for i in range(20)]


@pytest.fixture(scope="module")
def owner(language_model: torch.nn.Module, corpus: tuple[SequenceDataset, SequenceDataset]):  # type: ignore[no-untyped-def]
    train, _ = corpus
    options = {"num_samples": 120, "check_samples": 200, "dither": 23, "reproducible": True}
    return SCHEMES.build("hardened", options).lock(language_model, train)


def test_a_users_copy_is_named_from_its_weights_and_keeps_the_models_quality(  # type: ignore[no-untyped-def]
    owner, language_model, corpus
) -> None:
    _, test = corpus
    key = issue_user_key(owner.model, owner.key, "user7")
    assert all(e.name != "lm_head.weight" for e in key.entries)  # the tied output layer is marked through wte
    copy = unlock(owner.model, key)
    clean = task_quality(language_model, test)["perplexity"]
    assert task_quality(copy, test)["perplexity"] < clean * 1.05
    plan = user_plan(owner.key, language_model, MarkConfig())
    assert "lm_head.weight" not in plan.names
    assert trace_weights(copy, language_model, plan, USERS).accused == ("user7",)
    assert trace_weights(language_model, language_model, plan, USERS).accused == ()


def test_log_probabilities_after_secret_prompts_name_the_holder_and_no_innocent(  # type: ignore[no-untyped-def]
    owner, language_model, corpus
) -> None:
    train, _ = corpus
    plan = user_plan(owner.key, language_model, MarkConfig())
    config = QueryConfig(queries=256)
    prompts = make_prompts(language_model, plan, train.ids, config, length=12)
    assert prompts.shape == (256, 12) and prompts.dtype == torch.int64
    tracer = PromptTracer(language_model, plan, prompts, USERS, config)
    for user in ("user3", "user7"):
        copy = unlock(owner.model, issue_user_key(owner.model, owner.key, user))
        margins = prompt_margins(copy, prompts, tracer.classes)
        assert tracer.trace_logprobs(margins, 1e-3).accused == (user,)
        tokens = next_tokens(copy, prompts)
        assert tokens.shape == (256,) and set(tracer.trace_text(tokens, 1e-3).accused) <= {user}
        both = prompt_answers(copy, prompts, tracer.classes)
        assert torch.equal(both[0], tokens) and torch.allclose(both[1], margins)
    clean = language_model
    assert tracer.trace_logprobs(prompt_margins(clean, prompts, tracer.classes), 1e-3).accused == ()
    assert tracer.trace_text(next_tokens(clean, prompts), 1e-3).accused == ()
    with pytest.raises(DataError, match="fewer than the 256 queries"):
        make_prompts(language_model, plan, train.ids[:100], config)
    with pytest.raises(DataError, match="token ids"):
        make_prompts(language_model, plan, train.ids.float(), config)


def test_text_answers_are_centred_on_what_the_codes_make_likely(  # type: ignore[no-untyped-def]
    owner, language_model, corpus, monkeypatch
) -> None:
    # A prompt whose next token no code changes (a large margin) must add nothing to the
    # observation; one at a tie adds its whole sign: b - (1 - 2 Phi(-m / r)).
    train, _ = corpus
    plan = user_plan(owner.key, language_model, MarkConfig())
    config = QueryConfig(queries=64)
    tracer = PromptTracer(language_model, plan, make_prompts(language_model, plan, train.ids, config, length=12),
                          USERS, config).tracer  # fmt: skip
    tracer.margins = torch.zeros(64, dtype=torch.float64)
    tracer.margins[0] = 1e6  # certain: the first token whatever the code
    tokens = tracer.classes[:, 1].clone()  # every answer the centre's second token ...
    tokens[0] = tracer.classes[0, 0]  # ... but the certain prompt's, which is its first
    seen: dict[str, torch.Tensor] = {}
    real = tracer.estimate

    def spy(b: torch.Tensor, n: int) -> torch.Tensor:
        seen["b"] = b
        return real(b, n)

    monkeypatch.setattr(tracer, "estimate", spy)
    result = trace_tokens(tracer, tokens, 1e-3)
    b = seen["b"]
    assert b[0] == pytest.approx(0.0, abs=1e-12)  # 1 - (1 - 2 Phi(-inf))
    assert torch.allclose(b[1:], torch.full((63,), -1.0, dtype=torch.float64))  # -1 - (1 - 2 Phi(0))
    assert result.queries == 64
    seen.clear()
    trace_tokens(tracer, tokens, 1e-3, centred=False)
    assert seen["b"][0] == 1.0 and bool((seen["b"][1:] == -1.0).all())  # uncentred: the raw signs
