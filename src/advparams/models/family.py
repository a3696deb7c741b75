"""The models family's place in the house (:mod:`advparams.house`): the trained and null
models every other study starts from, ``advparams list``, ``train`` and ``evaluate``."""

from __future__ import annotations

from advparams.cli import models as cli
from advparams.data import DATASETS
from advparams.evaluation.models import ModelsStudy
from advparams.house import Family, RowKind, register_family
from advparams.models import MODELS

CLEAN_ROW = RowKind(
    "clean",
    ("checkpoint", "epochs", "perplexity"),
    "the trained (or loaded) model of a seed: its test accuracy (a language model's: next-token accuracy "
    "and perplexity) and training time",
)
NULL_ROW = RowKind(
    "null",
    (),
    "an independently trained model that calibrates thresholds",
)

FAMILY = register_family(
    Family(
        "models",
        order=0,
        what="trained models of each seed and the null models that calibrate thresholds",
        study=ModelsStudy,
        kinds=(CLEAN_ROW, NULL_ROW),
        cli=cli.add_parsers,
        registries={
            "models": (MODELS, "advparams train --model NAME"),
            "datasets": (DATASETS, "--dataset NAME"),
        },
    )
)
