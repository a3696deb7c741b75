"""The backdoors family's place in the house (:mod:`advparams.house`): the ``backdoors:``
section, backdoors implanted in each seed's model and measured; ``advparams backdoor``."""

from __future__ import annotations

from advparams.backdoors import BACKDOORS
from advparams.cli import backdoors as cli
from advparams.evaluation.backdoor_config import read_backdoors
from advparams.evaluation.backdoors import BackdoorsStudy
from advparams.house import Family, RowKind, Section, register_family
from advparams.reports.backdoors import backdoor_plots, backdoor_sections

BACKDOOR_ROW = RowKind(
    "backdoor",
    (
        "asr",
        "asr_mean",
        "asr_samples",
        "clean_accuracy",
        "clean_accuracy_twin",
        "compression",
        "counted",
        "info",
        "measure_seconds",
        "options",
        "physical",
        "physical_clean",
        "psnr",
        "reference_asr",
        "ssim",
        "twin",
    ),
    "a backdoor implanted in a seed's model: ASR, PSNR, SSIM, robustness",
)

FAMILY = register_family(
    Family(
        "backdoors",
        order=30,
        what="backdoors implanted in each seed's model, their success, stealth and robustness",
        section=Section("backdoors", read_backdoors),
        study=BackdoorsStudy,
        kinds=(BACKDOOR_ROW,),
        report=backdoor_sections,
        plots=backdoor_plots,
        cli=cli.add_parsers,
        registries={"backdoors": (BACKDOORS, "advparams backdoor implant --backdoor NAME")},
    )
)
