"""The backdoors family's place in the house (:mod:`advparams.house`): the ``backdoors:``
section, backdoors implanted in each seed's model and measured; ``advparams backdoor``."""

from __future__ import annotations

from advparams.backdoors import BACKDOORS
from advparams.cli import backdoors as cli
from advparams.evaluation.backdoor_config import read_backdoors
from advparams.evaluation.backdoors import BackdoorsStudy
from advparams.house import Family, Section, register_family
from advparams.reports.backdoors import backdoor_plots, backdoor_sections

FAMILY = register_family(
    Family(
        "backdoors",
        order=30,
        what="backdoors implanted in each seed's model, their success, stealth and robustness",
        section=Section("backdoors", read_backdoors),
        study=BackdoorsStudy,
        kinds=("backdoor",),
        report=backdoor_sections,
        plots=backdoor_plots,
        cli=cli.add_parsers,
        registries={"backdoors": (BACKDOORS, "advparams backdoor implant --backdoor NAME")},
    )
)
