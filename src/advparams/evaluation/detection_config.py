"""The ``detection:`` section of an evaluation config: which backdoor detectors screen which
backdoors of the ``backdoors:`` section, and how.

Example::

    detection:
      detectors:
        - name: adversarial            # Xue et al. 2021
        - name: strip
        - name: neural-cleanse
          options: {steps: 300}
      frrs: [0.05, 0.01]               # the calibrated false-rejection rates of the table
      eval_samples: 500                # clean test inputs scored (and their triggered copies)
      clean_samples: 1000              # the defender's clean data (the last test images)
      sanitise: [badnets, blend]       # training-set mode for these backdoors
      sanitise_with: [adversarial, neural-cleanse]   # each screens each of them

The clean models that Neural Cleanse (any detector that inspects models) judges are the
seeds' own models and the run's null models (``null_models``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from advparams.errors import ConfigError
from advparams.evaluation.reading import option, read_typed, write_typed
from advparams.evaluation.specs import MemberSpec, built_once, titled


@dataclass(frozen=True)
class DetectorSpec(MemberSpec):
    """One detector of the section (``name``: a registered detector)."""


@dataclass(frozen=True)
class DetectionSection:
    """The detectors of an evaluation and what they screen.

    Attributes:
        detectors: the detectors, in order.
        backdoors: labels of the backdoors screened (empty: every backdoor of the config).
        frrs: the calibrated false-rejection rates reported (the first is each detector's
            own threshold).
        eval_samples: clean test inputs scored, the first N (their triggered copies too).
        clean_samples: the defender's clean data, the last N test images (fit and calibration).
        sanitise: labels of the backdoors whose poisoned training set is screened and
            retrained without the flagged samples.
        sanitise_with: the detectors (labels) that screen training sets (empty: the first).
        keep_scores: scores kept per row for the ROC curves and histograms (the first N).
    """

    detectors: tuple[DetectorSpec, ...] = option(nonempty=True)
    backdoors: tuple[str, ...] = ()
    frrs: tuple[float, ...] = option((0.05, 0.01), lo=0.0, hi=0.5, open_range=True, nonempty=True)
    eval_samples: int = option(500, lo=10, hi=100_000)
    clean_samples: int = option(1000, lo=20, hi=100_000)
    sanitise: tuple[str, ...] = ()
    sanitise_with: tuple[str, ...] = ()
    keep_scores: int = option(2000, lo=0, hi=100_000)

    def spec(self, title: str) -> DetectorSpec:
        """The detector labelled ``title``."""
        return titled(self.detectors, title, "detector")

    @property
    def sanitisers(self) -> list[DetectorSpec]:
        """The detectors that screen training sets."""
        return [self.spec(t) for t in self.sanitise_with] if self.sanitise_with else [self.detectors[0]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict that :func:`detection_from_mapping` reads back."""
        return dict(write_typed(self))


def _labels(v: tuple[str, ...], what: str, known: list[str], kind: str) -> tuple[str, ...]:
    unknown = [s for s in v if s not in known]
    if unknown:
        raise ConfigError(f"detection.{what} names {', '.join(unknown)}, not a {kind} of the config")
    return v


def detection_from_mapping(raw: Any, backdoors: list[str]) -> DetectionSection:
    """Reads the ``detection:`` section (:func:`~advparams.evaluation.reading.read_typed`)
    and checks it against the config: ``backdoors`` are the labels of the config's
    backdoors (the section screens some of them); every detector is built with its options."""
    from advparams.detectors import DETECTORS

    if isinstance(raw, Mapping) and isinstance(raw.get("sanitise_with"), str):
        raw = {**raw, "sanitise_with": [raw["sanitise_with"]]}  # one detector, named alone
    section = read_typed(DetectionSection, raw, "detection")
    if not backdoors:
        raise ConfigError("detection needs a backdoors section: the backdoors it screens")
    titles = built_once(DETECTORS, section.detectors, "detector")
    _labels(section.backdoors, "backdoors", backdoors, "backdoor")
    _labels(section.sanitise, "sanitise", backdoors, "backdoor")
    _labels(section.sanitise_with, "sanitise_with", titles, "detector")
    return section


def read_detection(raw: Any, so_far: Mapping[str, Any]) -> DetectionSection:
    """The ``detection:`` section (:attr:`advparams.house.Section.read`): it screens the
    ``backdoors:`` section's backdoors, read before it."""
    backdoors = so_far.get("backdoors")
    return detection_from_mapping(raw, [b.title for b in backdoors.attacks] if backdoors is not None else [])


__all__ = ["DetectionSection", "DetectorSpec", "detection_from_mapping", "read_detection"]
