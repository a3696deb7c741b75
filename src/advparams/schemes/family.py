"""The locks family's place in the house (:mod:`advparams.house`): schemes lock each
seed's model, budget sweeps, attacks on the locked models; ``lock``, ``unlock`` and
``key-info``."""

from __future__ import annotations

from advparams.attacks import ATTACKS
from advparams.cli import locks as cli
from advparams.evaluation.locks import LocksStudy
from advparams.house import Family, register_family
from advparams.reports.locks import lock_plots, lock_sections
from advparams.schemes import SCHEMES

FAMILY = register_family(
    Family(
        "locks",
        order=10,
        what="models locked by a scheme, their stealth, budget curves and the attacks on them",
        study=LocksStudy,
        kinds=("lock", "stealth", "histogram", "budget", "attack", "baseline"),
        report=lock_sections,
        plots=lock_plots,
        cli=cli.add_parsers,
        registries={
            "schemes": (SCHEMES, "advparams lock --scheme NAME"),
            "attacks": (ATTACKS, "evaluation configs: attacks: [{name: NAME}]"),
        },
    )
)
