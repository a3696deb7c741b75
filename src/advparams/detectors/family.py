"""The detection family's place in the house (:mod:`advparams.house`): the ``detection:``
section, backdoor detectors screening the backdoored and clean models; ``advparams detect``."""

from __future__ import annotations

from typing import Any

from advparams.cli import detect as cli
from advparams.detectors import DETECTORS
from advparams.evaluation.detection import DetectionStudy
from advparams.evaluation.detection_config import read_detection
from advparams.house import Family, RowKind, Section, register_family
from advparams.reports.detection import detection_plots, detection_sections

DETECTION_ROW = RowKind(
    "detection",
    (
        "auc",
        "calibration_frr",
        "detector",
        "effective_counted",
        "fit_seconds",
        "fpr",
        "inspection",
        "natural_fpr",
        "natural_threshold",
        "natural_tpr",
        "options",
        "seconds_per_image",
        "thresholds",
        "tpr",
        "tpr_effective",
        "clean_*",
        "triggered_*",
    ),
    "a detector screening a backdoored model's inputs: TPR, FPR, AUC",
)
INSPECTION_ROW = RowKind(
    "inspection",
    ("detector", "inspection", "model", "options"),
    "a detector's inspection of a clean model",
)
SANITISE_ROW = RowKind(
    "sanitise",
    (
        "asr_after",
        "asr_after_mean",
        "detector",
        "flagged",
        "flagged_poisoned",
        "kept",
        "options",
        "poisoned",
        "precision",
        "recall",
        "screen_seconds",
        "train_samples",
    ),
    "a detector screening a poisoned training set, and the model trained on what it kept",
)


def _wants_null_models(config: Any) -> bool:
    return config.detection is not None  # the clean models the detectors inspect


FAMILY = register_family(
    Family(
        "detection",
        order=40,
        what="backdoor detectors against the backdoored models and clean ones",
        section=Section("detection", read_detection, is_work=False),
        study=DetectionStudy,
        kinds=(DETECTION_ROW, INSPECTION_ROW, SANITISE_ROW),
        report=detection_sections,
        plots=detection_plots,
        cli=cli.add_parsers,
        registries={"detectors": (DETECTORS, "advparams detect --detector NAME")},
        wants_null_models=_wants_null_models,
    )
)
