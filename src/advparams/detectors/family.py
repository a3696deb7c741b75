"""The detection family's place in the house (:mod:`advparams.house`): the ``detection:``
section, backdoor detectors screening the backdoored and clean models; ``advparams detect``."""

from __future__ import annotations

from typing import Any

from advparams.cli import detect as cli
from advparams.detectors import DETECTORS
from advparams.evaluation.detection import DetectionStudy
from advparams.evaluation.detection_config import read_detection
from advparams.house import Family, Section, register_family
from advparams.reports.detection import detection_plots, detection_sections


def _wants_null_models(config: Any) -> bool:
    return config.detection is not None  # the clean models the detectors inspect


FAMILY = register_family(
    Family(
        "detection",
        order=40,
        what="backdoor detectors against the backdoored models and clean ones",
        section=Section("detection", read_detection, is_work=False),
        study=DetectionStudy,
        kinds=("detection", "inspection", "sanitise"),
        report=detection_sections,
        plots=detection_plots,
        cli=cli.add_parsers,
        registries={"detectors": (DETECTORS, "advparams detect --detector NAME")},
        wants_null_models=_wants_null_models,
    )
)
