"""Black-box tracing of a language model: secret prompts, and reading the users' marks
from a suspect's next token (text only) or from its next-token log-probabilities [ours].

Under the output adapter ``last-token`` (:func:`advparams.metrics.accuracy.model_output`)
a language model answers a prompt with the scores of its next token, ``[N, V]``, as a
classifier answers an image, and the query tracer of :mod:`advparams.tracing.queries`
applies unchanged; only the queries differ, since token ids cannot be bisected:

* **prompts**: the first ``length`` tokens of windows of the owner's own text (a pool the
  suspect never sees as such), those at which the *centre* model (every mark at its
  expected value) is least sure of its next token: the smallest margin between its two
  most likely tokens, relative to how far the marks can move that margin (the norm of
  the margin's gradient over the marks). There a user's marks decide which of the two
  tokens the copy writes, about half of the users each way.
* **text only** (greedy decoding): the token the suspect writes after each prompt is its
  answer, read as the classifier's label (:meth:`QueryTracer.trace`).
* **log-probabilities**: the difference of the log-probabilities of the centre's two
  tokens that the suspect returns, less the centre's own, is to first order a linear
  observation of the marks (:meth:`QueryTracer.observation_from_margins`): far more
  information per prompt than one token.

The bound on accusing an innocent user is the white-box one in both cases: the
observation depends on the suspect's answers and the owner's secret, never on an
innocent user's codeword.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from advparams.errors import DataError
from advparams.metrics.accuracy import model_output
from advparams.tracing.mark import MarkPlan, MarkWriter, TraceResult, trace_observation
from advparams.tracing.queries import (
    QueryConfig,
    QueryTracer,
    _margin_gradients,
    answer_queries,
    check_limit,
    margins_of,
)

__all__ = ["PromptTracer", "make_prompts", "next_tokens", "prompt_answers", "prompt_margins", "trace_tokens"]


@contextmanager
def _last_token() -> Iterator[None]:
    with model_output("last-token"):
        yield


def make_prompts(
    original: nn.Module,
    plan: MarkPlan,
    pool: torch.Tensor,
    config: QueryConfig | None = None,
    *,
    length: int | None = None,
    shortlist: int = 4,
) -> torch.Tensor:
    """The secret prompts for ``plan`` (int64 ``[queries, length]``): of the windows of
    ``pool`` cut to ``length`` tokens, the ``config.queries`` at which the centre model is
    least sure of its next token relative to the marks' reach (see the module's text).
    The margin is computed for every window, the gradient for the ``shortlist`` times
    ``queries`` smallest margins only. ``original`` is not changed.

    Raises:
        DataError: the pool holds fewer windows than queries, or is not token ids.
    """
    cfg = config or QueryConfig()
    if pool.is_floating_point() or pool.dim() != 2:
        raise DataError(f"the prompt pool must be token ids [N, L], got {pool.dtype} {tuple(pool.shape)}")
    prompts = pool[:, : length or pool.shape[1]].contiguous()
    if len(prompts) < cfg.queries:
        raise DataError(f"the prompt pool holds {len(prompts)} windows, fewer than the {cfg.queries} queries asked")
    p = plan.code.biases()
    centre = MarkWriter(original, plan).write_signs(2.0 * p - 1.0).eval()
    with _last_token():
        with torch.no_grad():
            top = torch.cat(
                [_top2(centre, prompts[i : i + cfg.batch_size]) for i in range(0, len(prompts), cfg.batch_size)]
            )
        near = torch.argsort(top.abs())[: min(len(prompts), shortlist * cfg.queries)]
        _, grads = _margin_gradients(centre, plan, prompts[near], cfg.batch_size)
    reach = (grads * (4.0 * p * (1.0 - p)).sqrt()).norm(dim=1).clamp(min=1e-30)
    ranked = near[torch.argsort(top[near].abs().double() / reach)]
    return prompts[ranked[: cfg.queries]].clone()


def _top2(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from advparams.metrics.accuracy import logits_of

    scores = logits_of(model, x.to(next(model.parameters()).device)).float().cpu()
    best = scores.topk(2, dim=1).values
    return best[:, 0] - best[:, 1]


def next_tokens(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], prompts: torch.Tensor) -> torch.Tensor:
    """The token ``model`` writes after each prompt (greedy): a text-only suspect's answers."""
    with _last_token():
        return answer_queries(model, prompts)


@torch.no_grad()
def prompt_answers(
    model: nn.Module, prompts: torch.Tensor, classes: torch.Tensor, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both of a suspect's answers from one forward pass: its next token after each
    prompt (:func:`next_tokens`) and its margin between ``classes`` (:func:`prompt_margins`)."""
    from advparams.metrics.accuracy import logits_of

    device = next(model.parameters()).device
    tokens, margins = [], []
    model.eval()
    with _last_token():
        for start in range(0, len(prompts), batch_size):
            scores = logits_of(model, prompts[start : start + batch_size].to(device)).double().cpu()
            c = classes[start : start + batch_size]
            tokens.append(scores.argmax(1))
            margins.append(scores.gather(1, c[:, :1]).squeeze(1) - scores.gather(1, c[:, 1:2]).squeeze(1))
    return torch.cat(tokens), torch.cat(margins)


def prompt_margins(model: nn.Module, prompts: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``model``'s log-probability of ``classes[:, 0]`` less that of ``classes[:, 1]`` after
    each prompt: what a suspect that returns log-probabilities gives away."""
    with _last_token():
        return margins_of(model, prompts, classes)


def trace_tokens(
    tracer: QueryTracer, tokens: torch.Tensor, rate: float, limit: int | None = None, *, centred: bool = True
) -> TraceResult:
    """Who a suspect's next tokens after ``tracer``'s prompts (one per prompt, the first
    ``limit`` counted) name. ``centred`` (the default): each answer's sign (+1 for the
    centre's first token, -1 for its second, 0 for any other) less its expectation over
    the users' codes, ``1 - 2 Phi(-m / r)`` with ``m`` the centre's margin and ``r`` the
    marks' reach at that prompt [ours]: a prompt whose next token hardly any code changes
    then adds nothing, where uncentred it adds the same bias to every user's score (and
    more prompts can name fewer users)."""
    if not centred or tracer.margins is None:
        return tracer.trace(tokens, rate, limit)
    n = check_limit(limit, len(tracer.queries))
    a, c = tokens[:n].to(torch.int64), tracer.classes[:n]
    b = torch.where(a == c[:, 0], 1.0, torch.where(a == c[:, 1], -1.0, 0.0)).to(torch.float64)
    p = tracer.plan.code.biases().double()
    reach = ((tracer.gradients[:n] ** 2) * (4.0 * p * (1.0 - p))).sum(1).sqrt().clamp(min=1e-30)
    b = b - (1.0 - 2.0 * torch.special.ndtr(-tracer.margins[:n] / reach))
    result = trace_observation(tracer.estimate(b, n), tracer.plan, tracer.users, rate)
    return dataclasses.replace(result, queries=n)


class PromptTracer:
    """Traces language-model suspects from their answers to secret prompts: the query
    tracer of :mod:`advparams.tracing.queries` read at the last position."""

    def __init__(
        self,
        original: nn.Module,
        plan: MarkPlan,
        prompts: torch.Tensor,
        users: Sequence[str],
        config: QueryConfig | None = None,
    ) -> None:
        with _last_token():
            self.tracer = QueryTracer(original, plan, prompts, users, config)

    @property
    def classes(self) -> torch.Tensor:
        """The centre model's two most likely next tokens after each prompt."""
        return self.tracer.classes

    def trace_text(
        self, tokens: torch.Tensor, rate: float, limit: int | None = None, *, centred: bool = True
    ) -> TraceResult:
        """Who the suspect's next tokens (one per prompt) name (:func:`trace_tokens`)."""
        return trace_tokens(self.tracer, tokens, rate, limit, centred=centred)

    def trace_logprobs(self, margins: torch.Tensor, rate: float, limit: int | None = None) -> TraceResult:
        """Who the suspect's log-probability margins (:func:`prompt_margins`) name."""
        y = self.tracer.observation_from_margins(margins, limit)
        return trace_observation(y, self.tracer.plan, self.tracer.users, rate)
