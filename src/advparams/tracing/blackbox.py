"""The owner's black-box tracing, end to end: secret queries for a roster
(:func:`owner_queries`), a suspect's answers read from a file (:func:`read_answers`), and
tracing from those answers alone (:func:`trace_answers`). The method is in
:mod:`advparams.tracing.queries`; the file in :mod:`advparams.tracing.queryfile`.

Example::

    qs = owner_queries(locked, owner_key, roster.mark, pool)   # pool: the owner's images
    save_queries(qs, "queries.safetensors")
    # ... ask the suspect, e.g. an API, to label qs.inputs ...
    result = trace_answers(answers, qs, locked, owner_key, roster.users)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from advparams.errors import QueryFileError
from advparams.files import LIMITS, parse_json, read_file, register_limit
from advparams.fingerprint import model_fingerprint
from advparams.keys.key import Key, unlock
from advparams.tracing.keys import user_plan
from advparams.tracing.mark import MarkConfig, TraceResult
from advparams.tracing.queries import (
    QueryConfig,
    QueryTracer,
    answer_queries,
    check_fits,
    check_limit,
    make_queries,
    query_code_id,
)
from advparams.tracing.queryfile import QuerySet

register_limit("trace-answers", 16 * 1024**2)  # a suspect's answers to the queries (JSON)

__all__ = ["MAX_LABEL", "owner_queries", "read_answers", "trace_answers"]

MAX_LABEL = 1_000_000


def owner_queries(
    locked: nn.Module,
    owner_key: Key,
    mark: MarkConfig,
    pool: torch.Tensor,
    config: QueryConfig | None = None,
    *,
    generator: torch.Generator | None = None,
) -> QuerySet:
    """Secret queries for the users of a roster with settings ``mark``, made on the
    original that ``owner_key`` restores from ``locked``, between images of ``pool``."""
    cfg = config or QueryConfig()
    original = unlock(locked, owner_key)
    plan = user_plan(owner_key, original, mark)
    inputs = make_queries(original, plan, pool, cfg, generator=generator)
    return QuerySet(inputs, query_code_id(plan), model_fingerprint(original), mark, cfg)


def trace_answers(
    answers: torch.Tensor | Sequence[int] | Callable[[torch.Tensor], torch.Tensor],
    queries: QuerySet,
    locked: nn.Module,
    owner_key: Key,
    users: Sequence[str],
    rate: float = 1e-3,
    *,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> TraceResult:
    """Black-box tracing: the users whose copies answer ``queries`` as the suspect does.

    ``answers`` is one label per query, or a callable (a model behind an API) that labels
    a batch of ``queries.inputs``; only the first ``limit`` queries count when given (and
    only they are asked of a callable). ``progress`` is called with the number of queries
    whose gradients are done so far.

    Raises:
        QueryFileError: the queries were made for another code or another original.
        KeyMismatchError: ``owner_key`` does not fit ``locked``.
    """
    original = unlock(locked, owner_key)
    plan = user_plan(owner_key, original, queries.mark)
    if queries.code != query_code_id(plan) or queries.original != model_fingerprint(original):
        raise QueryFileError("these queries were made for another owner key, roster or model")
    n = check_limit(limit, len(queries.inputs))
    check_fits(locked, queries.inputs)
    if callable(answers) and not isinstance(answers, torch.Tensor):
        labels = answer_queries(answers, queries.inputs[:n]).reshape(-1)
        if labels.numel() != n:
            raise QueryFileError(f"the suspect gave {labels.numel()} answers to {n} queries: one label per query")
    else:
        labels = torch.as_tensor(answers, dtype=torch.int64).reshape(-1)
        if labels.numel() != len(queries.inputs):
            raise QueryFileError(f"{labels.numel()} answers for {len(queries.inputs)} queries: one label per query")
        labels = labels[:n]
    # the observation from the first n queries needs only their gradients
    tracer = QueryTracer(original, plan, queries.inputs[:n], users, queries.config, progress=progress)
    return tracer.trace(labels, rate)


def read_answers(path: str | Path, count: int) -> torch.Tensor:
    """A suspect's answers from a JSON file: a list of ``count`` class indices, or an
    object whose ``"answers"`` is one."""
    data = read_file(Path(path), what="answers file", limit=LIMITS["trace-answers"], error=QueryFileError)
    raw = parse_json(data, what="answers file", error=QueryFileError)
    if isinstance(raw, dict):
        raw = raw.get("answers")
    if (
        not isinstance(raw, list)
        or len(raw) != count
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_LABEL for v in raw)
    ):
        raise QueryFileError(f"the answers file must hold a list of {count} class indices, one per query")
    return torch.tensor(raw, dtype=torch.int64)
