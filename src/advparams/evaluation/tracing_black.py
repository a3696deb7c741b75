"""How the tracing study scores a trace, and its black-box tracers: a classifier's secret
queries (:mod:`advparams.tracing.queries`), and a language model's secret prompts
(:mod:`advparams.tracing.prompts`), traced from the suspect's next-token log-probabilities
(``black``) and from its text alone (``black_text``: the token it writes after each
prompt)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from advparams.tracing import QueryConfig, QueryTracer, TraceResult, answer_queries
from advparams.tracing.mark import MarkPlan, trace_observation


def named(result: TraceResult, guilty: set[str]) -> dict[str, Any]:
    """How a trace went: someone named, only guilty ones, innocents accused."""
    accused = set(result.accused)
    return {
        "named_right": bool(accused) and accused <= guilty,
        "innocents": len(accused - guilty),
        "guilty_named": len(accused & guilty),
        "top_guilty": max((s for u, s in zip(result.users, result.scores, strict=True) if u in guilty), default=None),
        "top_innocent": max(
            (s for u, s in zip(result.users, result.scores, strict=True) if u not in guilty), default=None
        ),
        "threshold": result.threshold,
    }


def _by_limits(
    trace: Any, guilty: set[str], limits: Sequence[int], available: int, prefix: str, needed_key: str
) -> dict[str, Any]:
    """``trace(limit)`` with every query and with the first ``n`` of each limit, and the
    least ``n`` that names the right users."""
    black = {n: named(trace(n), guilty) for n in limits}
    full = named(trace(None), guilty)
    needed = next((n for n in sorted(black) if black[n]["named_right"]), None)
    if needed is None and full["named_right"]:
        needed = available
    return {prefix: full, f"{prefix}_by_queries": {str(n): v for n, v in black.items()}, needed_key: needed}


def query_black_box(
    suspect: nn.Module, tracer: QueryTracer, guilty: set[str], rate: float, limits: Sequence[int]
) -> dict[str, Any]:
    """A classifier suspect's black-box metrics: its labels for the secret queries."""
    answers = answer_queries(suspect, tracer.queries)
    return _by_limits(
        lambda n: tracer.trace(answers, rate, n), guilty, limits, len(tracer.queries), "black", "queries_needed"
    )


def make_prompt_tracer(
    original: nn.Module,
    plan: MarkPlan,
    pool: torch.Tensor,
    users: Sequence[str],
    config: QueryConfig,
    length: int | None,
    stride: int | None = None,
) -> QueryTracer:
    """A language model's black-box tracer: secret prompts of ``length`` tokens from the
    owner's windows ``pool`` (:func:`advparams.tracing.prompts.make_prompts`), one per
    window, or (``stride``) every run of ``length`` tokens starting every ``stride``
    tokens of each window: far more candidates, so prompts at which the copies' marks
    decide the next token are found (what tracing from text alone needs)."""
    from advparams.tracing.prompts import PromptTracer, make_prompts

    if stride is not None:
        size = min(length or pool.shape[1], pool.shape[1])
        pool = pool.unfold(1, size, stride).reshape(-1, size)
    prompts = make_prompts(original, plan, pool, config, length=length)
    return PromptTracer(original, plan, prompts, users, config).tracer


def prompt_black_box(
    suspect: nn.Module, tracer: QueryTracer, guilty: set[str], rate: float, limits: Sequence[int]
) -> dict[str, Any]:
    """A language-model suspect's black-box metrics from one forward pass over the secret
    prompts: from its log-probability margins (``black``, ``queries_needed``) and from
    the tokens it writes (``black_text``, ``text_queries_needed``)."""
    from advparams.tracing.prompts import prompt_answers, trace_tokens

    tokens, margins = prompt_answers(suspect, tracer.queries, tracer.classes)

    def logprobs(n: int | None) -> TraceResult:
        return trace_observation(tracer.observation_from_margins(margins, n), tracer.plan, tracer.users, rate)

    available = len(tracer.queries)
    out = _by_limits(logprobs, guilty, limits, available, "black", "queries_needed")
    text = _by_limits(
        lambda n: trace_tokens(tracer, tokens, rate, n), guilty, limits, available, "black_text", "text_needed"
    )
    return {**out, **text}


__all__ = ["make_prompt_tracer", "named", "prompt_black_box", "query_black_box"]
