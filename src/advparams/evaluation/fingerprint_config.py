"""The ``fingerprints:`` section of an evaluation config: which ownership fingerprints are
taken of each seed's model, and the models that are *not* copies.

Example::

    fingerprints:
      schemes:
        - name: infip                 # Xue et al. 2022
        - name: ipguard               # Cao, Jia and Gong 2021
      fpr: 0.01                       # the false-positive rate thresholds are set for
      negatives: 5                    # independent models of the same architecture
      other_models:                   # and of other architectures
        - {model: vgg, options: {width: 16}, count: 2}

The positives are the config's ``attacks:`` applied to each seed's model (fine-tuning,
pruning, overwriting, distillation, the adaptive attack); thresholds are calibrated on
the run's null models (``null_models``, seeds 1000, ...), and the negatives (seeds 2000, ...
for the same architecture, 3000, ... for others) are held out from calibration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from advparams.errors import ConfigError
from advparams.evaluation.reading import option, read_typed, write_typed
from advparams.evaluation.specs import MemberSpec, Titled, built_once, titled

NEGATIVE_SEED = 2000
"""Negatives of the run's architecture have seeds 2000, 2001, ...; never a seed of the run
or of a null model."""
OTHER_SEED = 3000
"""Negatives of other architectures have seeds 3000, 3001, ..."""


@dataclass(frozen=True)
class FingerprintSpec(MemberSpec):
    """One fingerprint of the section (``name``: a registered fingerprint)."""


@dataclass(frozen=True)
class OtherModelSpec(Titled):
    """Independently trained negatives of another architecture.

    Attributes:
        model: a registered architecture.
        options: its arguments (the data set's shape is filled in).
        count: how many (seeds 3000, 3001, ...).
        label: how tables call it (default: the architecture's name).
    """

    named_by = "model"
    model: str
    options: Mapping[str, Any] = field(default_factory=dict)
    count: int = option(2, lo=1, hi=100)
    label: str | None = None


@dataclass(frozen=True)
class FingerprintSection:
    """The fingerprints of an evaluation and the negatives they are measured against.

    Attributes:
        schemes: the fingerprints, in order.
        fpr: the false-positive rate every threshold is calibrated for on the null models.
        negatives: independent models of the run's architecture (held out).
        other_models: independent models of other architectures (held out).
    """

    schemes: tuple[FingerprintSpec, ...] = option(nonempty=True)
    fpr: float = option(0.01, lo=0.0, hi=0.5, open_range=True)
    negatives: int = option(5, lo=0, hi=1000)
    other_models: tuple[OtherModelSpec, ...] = ()

    def spec(self, title: str) -> FingerprintSpec:
        """The fingerprint labelled ``title``."""
        return titled(self.schemes, title, "fingerprint")

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict that :func:`fingerprints_from_mapping` reads back."""
        return dict(write_typed(self))


def fingerprints_from_mapping(raw: Any) -> FingerprintSection:
    """Reads the ``fingerprints:`` section (:func:`~advparams.evaluation.reading.read_typed`);
    every fingerprint is built with its options, every other model's architecture known."""
    from advparams.fingerprints import FINGERPRINTS
    from advparams.models import MODELS

    section = read_typed(FingerprintSection, raw, "fingerprints")
    built_once(FINGERPRINTS, section.schemes, "fingerprint")
    others: list[str] = []
    for o in section.other_models:
        MODELS.get(o.model)
        if o.title in others:
            raise ConfigError(f"other model {o.title!r} is listed twice; give one a label")
        others.append(o.title)
    return section


def read_fingerprints(raw: Any, so_far: Mapping[str, Any]) -> FingerprintSection:
    """The ``fingerprints:`` section (:attr:`advparams.house.Section.read`); an other model
    may not share the run model's name unlabelled."""
    section = fingerprints_from_mapping(raw)
    if so_far["model"] in [o.title for o in section.other_models]:
        raise ConfigError(
            f"fingerprints.other_models: label the {so_far['model']} entry, the run's model has that name"
        )
    return section


def check_fingerprint_models(config: Any, run_model: Any) -> None:
    """Every other model's architecture builds and runs on the data set's inputs."""
    from advparams.evaluation.model_check import check_architecture

    for i, o in enumerate(config.fingerprints.other_models):
        check_architecture(
            o.model, o.options, config.dataset, config.model_output, f"fingerprints.other_models[{i}].options"
        )


__all__ = [
    "check_fingerprint_models",
    "read_fingerprints",
    "NEGATIVE_SEED",
    "OTHER_SEED",
    "FingerprintSection",
    "FingerprintSpec",
    "OtherModelSpec",
    "fingerprints_from_mapping",
]
