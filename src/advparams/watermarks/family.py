"""The watermarks family's place in the house (:mod:`advparams.house`): watermarks
embedded in each seed's model and the attacks on them; ``advparams watermark``."""

from __future__ import annotations

from typing import Any

from advparams.cli import watermarks as cli
from advparams.evaluation.watermarks import WatermarksStudy
from advparams.house import Family, register_family
from advparams.reports.watermarks import watermark_sections
from advparams.watermarks import WATERMARKS


def _wants_null_models(config: Any) -> bool:
    return bool(config.watermarks)  # their thresholds are calibrated on the null models


FAMILY = register_family(
    Family(
        "watermarks",
        order=20,
        what="watermarks embedded in each seed's model, verified, fingerprinted and attacked",
        study=WatermarksStudy,
        kinds=("watermark", "wm-attack"),
        report=watermark_sections,
        cli=cli.add_parsers,
        registries={"watermarks": (WATERMARKS, "advparams watermark embed --scheme NAME")},
        wants_null_models=_wants_null_models,
    )
)
