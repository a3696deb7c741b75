"""The tracing family's place in the house (:mod:`advparams.house`): the ``tracing:``
section, per-user keys whose copies are traced white- and black-box; ``advparams keys``
and ``advparams trace``."""

from __future__ import annotations

from advparams.cli import tracing as cli
from advparams.evaluation.tracing import TracingStudy
from advparams.evaluation.tracing_config import check_tracing_models, read_tracing
from advparams.house import Family, Section, register_family
from advparams.reports.tracing import tracing_plots, tracing_sections

FAMILY = register_family(
    Family(
        "tracing",
        order=60,
        what="traceable per-user keys, their users' copies and the attacks on them, traced both ways",
        section=Section("tracing", read_tracing, check_models=check_tracing_models),
        study=TracingStudy,
        kinds=("trace-lock", "trace-copy", "trace-attack"),
        report=tracing_sections,
        plots=tracing_plots,
        cli=cli.add_parsers,
    )
)
