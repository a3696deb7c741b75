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
from advparams.evaluation.reading import integer, known_keys
from advparams.evaluation.specs import MemberSpec


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

    detectors: tuple[DetectorSpec, ...]
    backdoors: tuple[str, ...] = ()
    frrs: tuple[float, ...] = (0.05, 0.01)
    eval_samples: int = 500
    clean_samples: int = 1000
    sanitise: tuple[str, ...] = ()
    sanitise_with: tuple[str, ...] = ()
    keep_scores: int = 2000

    def spec(self, title: str) -> DetectorSpec:
        """The detector labelled ``title``."""
        for s in self.detectors:
            if s.title == title:
                return s
        raise ConfigError(f"the config has no detector labelled {title!r}")

    @property
    def sanitisers(self) -> list[DetectorSpec]:
        """The detectors that screen training sets."""
        return [self.spec(t) for t in self.sanitise_with] if self.sanitise_with else [self.detectors[0]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict that :func:`detection_from_mapping` reads back."""
        return {
            "detectors": [{"name": d.name, "options": dict(d.options), "label": d.label} for d in self.detectors],
            "backdoors": list(self.backdoors),
            "frrs": list(self.frrs),
            "eval_samples": self.eval_samples,
            "clean_samples": self.clean_samples,
            "sanitise": list(self.sanitise),
            "sanitise_with": list(self.sanitise_with),
            "keep_scores": self.keep_scores,
        }


def _labels(v: Any, what: str, known: list[str], kind: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise ConfigError(f"detection.{what} must be a list of {kind} labels")
    unknown = [s for s in v if s not in known]
    if unknown:
        raise ConfigError(f"detection.{what} names {', '.join(unknown)}, not a {kind} of the config")
    return tuple(v)


def detection_from_mapping(raw: Any, backdoors: list[str]) -> DetectionSection:
    """Builds and validates the ``detection:`` section; ``backdoors`` are the labels of the
    config's backdoors (the section screens some of them)."""
    from advparams.detectors import DETECTORS

    if not isinstance(raw, Mapping):
        raise ConfigError(f"detection must be a mapping, got {type(raw).__name__}")
    allowed = {
        "detectors",
        "backdoors",
        "frrs",
        "eval_samples",
        "clean_samples",
        "sanitise",
        "sanitise_with",
        "keep_scores",
    }
    known_keys(raw, allowed, "detection")
    if not backdoors:
        raise ConfigError("detection needs a backdoors section: the backdoors it screens")
    specs: list[DetectorSpec] = []
    listed = raw.get("detectors") or []
    if not isinstance(listed, list) or not listed:
        raise ConfigError("detection.detectors must be a non-empty list")
    for i, d in enumerate(listed):
        what = f"detection.detectors[{i}]"
        if not isinstance(d, Mapping):
            raise ConfigError(f"{what} must be a mapping")
        known_keys(d, {"name", "options", "label"}, what)
        name, label = d.get("name"), d.get("label")
        if not isinstance(name, str) or not (label is None or isinstance(label, str)):
            raise ConfigError(f"{what} needs a name; name and label are strings")
        options = d.get("options") or {}
        if not isinstance(options, Mapping):
            raise ConfigError(f"{what}.options must be a mapping")
        DETECTORS.build(name, dict(options))  # validates name and options
        spec = DetectorSpec(name, dict(options), label)
        if spec.title in [s.title for s in specs]:
            raise ConfigError(f"detector {spec.title!r} is listed twice; give one a label")
        specs.append(spec)
    titles = [s.title for s in specs]
    screened = _labels(raw.get("backdoors") or [], "backdoors", backdoors, "backdoor")
    frrs_raw = raw.get("frrs", [0.05, 0.01])
    if (
        not isinstance(frrs_raw, list)
        or not frrs_raw
        or not all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0.0 < f < 0.5 for f in frrs_raw)
    ):
        raise ConfigError("detection.frrs must be a list of rates in (0, 0.5)")
    sanitise = _labels(raw.get("sanitise") or [], "sanitise", backdoors, "backdoor")
    with_raw = raw.get("sanitise_with") or []
    sanitise_with = _labels([with_raw] if isinstance(with_raw, str) else with_raw, "sanitise_with", titles, "detector")
    return DetectionSection(
        tuple(specs),
        screened,
        tuple(float(f) for f in frrs_raw),
        integer(raw.get("eval_samples", 500), "detection.eval_samples", 10, 100_000),
        integer(raw.get("clean_samples", 1000), "detection.clean_samples", 20, 100_000),
        sanitise,
        sanitise_with,
        integer(raw.get("keep_scores", 2000), "detection.keep_scores", 0, 100_000),
    )


def read_detection(raw: Any, so_far: Mapping[str, Any]) -> DetectionSection:
    """The ``detection:`` section (:attr:`advparams.house.Section.read`): it screens the
    ``backdoors:`` section's backdoors, read before it."""
    backdoors = so_far.get("backdoors")
    return detection_from_mapping(raw, [b.title for b in backdoors.attacks] if backdoors is not None else [])


__all__ = ["DetectionSection", "DetectorSpec", "detection_from_mapping", "read_detection"]
