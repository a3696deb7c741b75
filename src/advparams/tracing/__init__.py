"""Traceable copies: training-free per-user marks in the weights, carried by a
collusion-resistant Tardos code, and tracing of a leaked copy back to its holder
(``docs/tracing.md``)."""

from advparams.tracing.blackbox import owner_queries, read_answers, trace_answers
from advparams.tracing.code import TardosCode, accusation_threshold, observation, scores
from advparams.tracing.keys import code_secret, issue_user_key, user_copy, user_plan
from advparams.tracing.mark import (
    MarkConfig,
    MarkPlan,
    MarkWriter,
    TraceResult,
    mark_copy,
    mark_plan,
    observe,
    trace_observation,
    trace_weights,
)
from advparams.tracing.queries import QueryConfig, QueryTracer, answer_queries, make_queries
from advparams.tracing.queryfile import QuerySet, load_queries, save_queries

__all__ = [
    "MarkConfig",
    "MarkPlan",
    "MarkWriter",
    "QueryConfig",
    "QueryTracer",
    "QuerySet",
    "TardosCode",
    "TraceResult",
    "accusation_threshold",
    "answer_queries",
    "code_secret",
    "issue_user_key",
    "load_queries",
    "make_queries",
    "mark_copy",
    "mark_plan",
    "observation",
    "observe",
    "owner_queries",
    "read_answers",
    "save_queries",
    "scores",
    "trace_answers",
    "trace_observation",
    "trace_weights",
    "user_copy",
    "user_plan",
]
