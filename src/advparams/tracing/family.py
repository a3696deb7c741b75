"""The tracing family's place in the house (:mod:`advparams.house`): the ``tracing:``
section, per-user keys whose copies are traced white- and black-box; ``advparams keys``
and ``advparams trace``."""

from __future__ import annotations

from advparams.cli import tracing as cli
from advparams.evaluation.tracing import TracingStudy
from advparams.evaluation.tracing_config import check_tracing_models, read_tracing
from advparams.house import Family, RowKind, Section, register_family
from advparams.reports.tracing import tracing_plots, tracing_sections
from advparams.tracing.attacks import COPY_ATTACKS

TRACE_LOCK_ROW = RowKind(
    "trace-lock",
    (
        "copy_reproduced",
        "draws",
        "locked_accuracy",
        "positions",
        "queries",
        "query_seconds",
        "rate",
        "strength",
        "users",
    ),
    "a traceable lock of a model and the queries' cost",
)
TRACE_COPY_ROW = RowKind(
    "trace-copy",
    (
        "accuracy_original",
        "agreement",
        "black",
        "black_by_queries",
        "black_text",
        "black_text_by_queries",
        "guilty",
        "queries_needed",
        "text_needed",
        "white",
    ),
    "one user's copy: accuracy, label agreement, white- and black-box tracing (a language model's also from "
    "its text alone)",
)
TRACE_ATTACK_ROW = RowKind(
    "trace-attack",
    (
        "accuracy_original",
        "agreement",
        "attack_seconds",
        "black",
        "black_by_queries",
        "black_text",
        "black_text_by_queries",
        "changed",
        "found",
        "guilty",
        "members",
        "queries_needed",
        "relocked_values",
        "skipped",
        "text_needed",
        "white",
    ),
    "an attacked or colluders' copy, traced both ways",
)

FAMILY = register_family(
    Family(
        "tracing",
        order=60,
        what="traceable per-user keys, their users' copies and the attacks on them, traced both ways",
        section=Section("tracing", read_tracing, check_models=check_tracing_models),
        study=TracingStudy,
        kinds=(TRACE_LOCK_ROW, TRACE_COPY_ROW, TRACE_ATTACK_ROW),
        report=tracing_sections,
        plots=tracing_plots,
        cli=cli.add_parsers,
        registries={"tracing-attacks": (COPY_ATTACKS, "evaluation configs: tracing: attacks: [{name: NAME}]")},
    )
)
