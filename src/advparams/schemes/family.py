"""The locks family's place in the house (:mod:`advparams.house`): schemes lock each
seed's model, budget sweeps, attacks on the locked models; ``lock``, ``unlock`` and
``key-info``."""

from __future__ import annotations

from advparams.attacks import ATTACKS
from advparams.cli import locks as cli
from advparams.evaluation.locks import LocksStudy
from advparams.house import Family, RowKind, register_family
from advparams.reports.locks import lock_plots, lock_sections
from advparams.schemes import SCHEMES

LOCK_ROW = RowKind(
    "lock",
    (
        "backward_passes",
        "bit_exact",
        "changed_per_tensor",
        "config",
        "forward_passes",
        "holdout_accuracy_after",
        "key_bytes",
        "key_secret",
        "key_values",
        "lock_accuracy_after",
        "lock_accuracy_before",
        "options",
        "params_changed",
        "params_total",
        "perplexity",
        "perplexity_bar",
        "proportion_percent",
        "rounds",
        "stopped",
        "target_accuracy",
        "target_met",
        "unlocked_accuracy",
    ),
    "a scheme's lock of a seed's model: locked and unlocked accuracy (a language model's: also the locked "
    "perplexity and the unigram bar), the key's size, time",
)
STEALTH_ROW = RowKind(
    "stealth",
    (
        "alpha",
        "max_abs_z",
        "mean_abs_z",
        "min_p_value",
        "per_tensor",
        "share_extreme_1pct",
        "tensors",
        "tensors_rejected",
    ),
    "KS tests, ranks and z-scores of a lock's changed values",
)
HISTOGRAM_ROW = RowKind(
    "histogram",
    ("*",),
    "per-tensor weight histograms, original against locked (first seed)",
)
BUDGET_ROW = RowKind(
    "budget",
    ("lock_accuracy_after", "options", "params_changed"),
    "a lock made with a given budget: accuracy against size",
)
ATTACK_ROW = RowKind(
    "attack",
    ("info", "options", "perplexity", "precision", "recall", "suspects"),
    "an attack on a locked model: accuracy after, detection scores",
)
BASELINE_ROW = RowKind(
    "baseline",
    ("made_with", "options", "perplexity"),
    "a model an attack made for comparison (the scratch model)",
)

FAMILY = register_family(
    Family(
        "locks",
        order=10,
        what="models locked by a scheme, their stealth, budget curves and the attacks on them",
        study=LocksStudy,
        kinds=(LOCK_ROW, STEALTH_ROW, HISTOGRAM_ROW, BUDGET_ROW, ATTACK_ROW, BASELINE_ROW),
        report=lock_sections,
        plots=lock_plots,
        cli=cli.add_parsers,
        registries={
            "schemes": (SCHEMES, "advparams lock --scheme NAME"),
            "attacks": (ATTACKS, "evaluation configs: attacks: [{name: NAME}]"),
        },
    )
)
