"""The fingerprints family's place in the house (:mod:`advparams.house`): the
``fingerprints:`` section, ownership fingerprints against copies and strangers;
``advparams fingerprint``."""

from __future__ import annotations

from typing import Any

from advparams.cli import fingerprints as cli
from advparams.evaluation.fingerprint_config import check_fingerprint_models, read_fingerprints
from advparams.evaluation.fingerprints import FingerprintsStudy
from advparams.fingerprints import FINGERPRINTS
from advparams.house import Family, RowKind, Section, register_family
from advparams.reports.fingerprints import fingerprint_plots, fingerprint_sections

FP_MODEL_ROW = RowKind(
    "fp-model",
    ("model",),
    "an independently trained negative for the fingerprints",
)
FINGERPRINT_ROW = RowKind(
    "fingerprint",
    (
        "extract_seconds",
        "fpr",
        "negative_false_positives",
        "negatives",
        "null_mean",
        "null_scores",
        "null_std",
        "options",
        "p_value",
        "probes",
        "score",
        "then_lock",
        "threshold",
        "verified",
        "verify_seconds",
    ),
    "a fingerprint of a seed's model: calibration, nulls' and negatives' scores, times",
)
FP_SUSPECT_ROW = RowKind(
    "fp-suspect",
    ("attack_seconds", "info", "options", "p_value", "score", "threshold", "verified", "verify_seconds"),
    "a fingerprint's verification of a model an attack derived from it",
)


def _wants_null_models(config: Any) -> bool:
    return config.fingerprints is not None  # the strangers that calibrate the threshold


FAMILY = register_family(
    Family(
        "fingerprints",
        order=50,
        what="ownership fingerprints of each seed's model, verified on copies and strangers",
        section=Section("fingerprints", read_fingerprints, check_models=check_fingerprint_models),
        study=FingerprintsStudy,
        kinds=(FP_MODEL_ROW, FINGERPRINT_ROW, FP_SUSPECT_ROW),
        report=fingerprint_sections,
        plots=fingerprint_plots,
        cli=cli.add_parsers,
        registries={"fingerprints": (FINGERPRINTS, "advparams fingerprint extract --scheme NAME")},
        wants_null_models=_wants_null_models,
    )
)
