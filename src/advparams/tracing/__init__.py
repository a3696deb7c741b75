"""Traceable copies: training-free per-user marks in the weights, carried by a
collusion-resistant Tardos code, and tracing of a leaked copy back to its holder
(``docs/tracing.md``)."""

from advparams.tracing.code import TardosCode, accusation_threshold, observation, scores
from advparams.tracing.keys import code_secret, issue_user_key, user_copy, user_plan
from advparams.tracing.mark import (
    MarkConfig,
    MarkPlan,
    TraceResult,
    mark_copy,
    mark_plan,
    observe,
    trace_observation,
    trace_weights,
)

__all__ = [
    "MarkConfig",
    "MarkPlan",
    "TardosCode",
    "TraceResult",
    "accusation_threshold",
    "code_secret",
    "issue_user_key",
    "mark_copy",
    "mark_plan",
    "observation",
    "observe",
    "scores",
    "trace_observation",
    "trace_weights",
    "user_copy",
    "user_plan",
]
