"""The watermarks family's place in the house (:mod:`advparams.house`): watermarks
embedded in each seed's model and the attacks on them; ``advparams watermark``."""

from __future__ import annotations

from typing import Any

from advparams.cli import watermarks as cli
from advparams.evaluation.watermarks import WatermarksStudy
from advparams.house import Family, RowKind, register_family
from advparams.reports.watermarks import watermark_sections
from advparams.watermarks import WATERMARKS

WATERMARK_ROW = RowKind(
    "watermark",
    (
        "authentication_success",
        "clean_accuracy_before",
        "forged_rejected",
        "fpr",
        "info",
        "null_false_positives",
        "null_rate",
        "null_scores",
        "num_keys",
        "options",
        "p_value",
        "then_lock",
        "threshold",
        "unknown_rejected",
        "users",
        "users_authenticated",
        "verified",
        "watermark_accuracy",
    ),
    "a watermark embedded in a seed's model: accuracies, calibration, authentication, then-lock",
)
WM_ATTACK_ROW = RowKind(
    "wm-attack",
    (
        "authentication_success",
        "info",
        "key_queries_flagged",
        "null_rate",
        "options",
        "p_value",
        "retention",
        "test_queries_flagged",
        "threshold",
        "users",
        "users_authenticated",
        "verified",
    ),
    "an attack on a watermarked model: retention, verification, accuracy",
)


def _wants_null_models(config: Any) -> bool:
    return bool(config.watermarks)  # their thresholds are calibrated on the null models


FAMILY = register_family(
    Family(
        "watermarks",
        order=20,
        what="watermarks embedded in each seed's model, verified, fingerprinted and attacked",
        study=WatermarksStudy,
        kinds=(WATERMARK_ROW, WM_ATTACK_ROW),
        report=watermark_sections,
        cli=cli.add_parsers,
        registries={"watermarks": (WATERMARKS, "advparams watermark embed --scheme NAME")},
        wants_null_models=_wants_null_models,
    )
)
