"""The models family's place in the house (:mod:`advparams.house`): the trained and null
models every other study starts from, ``advparams list``, ``train`` and ``evaluate``."""

from __future__ import annotations

from advparams.cli import models as cli
from advparams.data import DATASETS
from advparams.evaluation.models import ModelsStudy
from advparams.house import Family, register_family
from advparams.models import MODELS

FAMILY = register_family(
    Family(
        "models",
        order=0,
        what="trained models of each seed and the null models that calibrate thresholds",
        study=ModelsStudy,
        kinds=("clean", "null"),
        cli=cli.add_parsers,
        registries={
            "models": (MODELS, "advparams train --model NAME"),
            "datasets": (DATASETS, "--dataset NAME"),
        },
    )
)
