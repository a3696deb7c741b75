"""The ``backdoors:`` section of an evaluation config: which backdoors to implant and how
to measure them.

Example::

    backdoors:
      asr_samples: 2000            # test images per ASR (target-class ones not counted)
      qualities: [10, 30, 50, 70, 90]
      attacks:
        - name: badnets
        - name: dct
          label: dct-n2n
          options: {mode: n-to-n, triggers: 3}
        - name: compression-resistant
          options: {codecs: [jpeg, jpeg2000]}   # webp held out of training
          measure: [compression]
          compare: blend           # the "normal" backdoor of its tables and plots
        - name: ptb
          label: ptb-0.5
          options: {poison_rate: 0.005}
          measure: [physical]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from advparams.backdoors.measure import COMBINED, DEFAULT_TRANSFORMATIONS
from advparams.errors import ConfigError
from advparams.evaluation.limits import MAX_ASR_SAMPLES, MAX_STRENGTHS, check_strength
from advparams.evaluation.reading import known_keys
from advparams.evaluation.specs import Titled
from advparams.imaging import CODECS, TRANSFORMATIONS

MEASURES = ("compression", "physical")
"""What a backdoor can be measured under beyond its plain ASR, PSNR and SSIM."""


@dataclass(frozen=True)
class BackdoorSpec(Titled):
    """One backdoor to implant.

    Attributes:
        name: registered backdoor name.
        options: its configuration (``seed`` is set from the run's seed).
        label: how tables call it (default: the name).
        measure: extra measures, from :data:`MEASURES`.
        compare: the label of the backdoor this one is compared with in the compression
            and physical tables (its "normal" or "without PTB" twin).
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None
    measure: tuple[str, ...] = ()
    compare: str | None = None


@dataclass(frozen=True)
class BackdoorSection:
    """The backdoors of an evaluation and their measures.

    Attributes:
        attacks: the backdoors, in order.
        asr_samples: test images every ASR, PSNR and SSIM is measured on (the first N;
            None: all).
        codecs: codecs of the compression grid.
        qualities: qualities of the compression grid.
        transformations: transformation -> strengths of the physical grid.
    """

    attacks: tuple[BackdoorSpec, ...]
    asr_samples: int | None = 2000
    codecs: tuple[str, ...] = CODECS
    qualities: tuple[int, ...] = (10, 30, 50, 70, 90)
    transformations: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: dict(DEFAULT_TRANSFORMATIONS))

    def spec(self, title: str) -> BackdoorSpec:
        """The backdoor labelled ``title``."""
        for s in self.attacks:
            if s.title == title:
                return s
        raise ConfigError(f"the config has no backdoor labelled {title!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict that :func:`section_from_mapping` reads back."""
        return {
            "attacks": [
                {
                    "name": s.name,
                    "options": dict(s.options),
                    "label": s.label,
                    "measure": list(s.measure),
                    "compare": s.compare,
                }
                for s in self.attacks
            ],
            "asr_samples": self.asr_samples,
            "codecs": list(self.codecs),
            "qualities": list(self.qualities),
            "transformations": {k: list(v) for k, v in self.transformations.items()},
        }


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def section_from_mapping(raw: Any, taken: list[str]) -> BackdoorSection:
    """Builds and validates the ``backdoors:`` section; ``taken`` are labels already used
    by the config's schemes and watermarks."""
    from advparams.backdoors import BACKDOORS

    if not isinstance(raw, Mapping):
        raise ConfigError(f"backdoors must be a mapping, got {type(raw).__name__}")
    allowed = {"attacks", "asr_samples", "codecs", "qualities", "transformations"}
    known_keys(raw, allowed, "backdoors")
    specs: list[BackdoorSpec] = []
    attacks = raw.get("attacks") or []
    if not isinstance(attacks, list) or not attacks:
        raise ConfigError("backdoors.attacks must be a non-empty list")
    for i, a in enumerate(attacks):
        what = f"backdoors.attacks[{i}]"
        if not isinstance(a, Mapping):
            raise ConfigError(f"{what} must be a mapping")
        known_keys(a, {"name", "options", "label", "measure", "compare"}, what)
        name, label, compare = a.get("name"), a.get("label"), a.get("compare")
        if not isinstance(name, str) or not all(v is None or isinstance(v, str) for v in (label, compare)):
            raise ConfigError(f"{what} needs a name; name, label and compare are strings")
        options = a.get("options") or {}
        if not isinstance(options, Mapping):
            raise ConfigError(f"{what}.options must be a mapping")
        try:  # validates the name and the options (PTB's ranges within the transformations' limits)
            BACKDOORS.build(name, dict(options))
        except ConfigError as exc:
            raise ConfigError(f"{what}.options: {exc}") from None
        measure = a.get("measure") or []
        if not isinstance(measure, list) or any(m not in MEASURES for m in measure):
            raise ConfigError(f"{what}.measure must list some of {', '.join(MEASURES)}")
        spec = BackdoorSpec(name, dict(options), label, tuple(measure), compare)
        if spec.title in taken + [s.title for s in specs]:
            raise ConfigError(f"{spec.title!r} is listed twice; give one a label")
        specs.append(spec)
    titles = [s.title for s in specs]
    for s in specs:
        if s.compare is not None and (s.compare not in titles or s.compare == s.title):
            raise ConfigError(f"backdoor {s.title} compares with {s.compare!r}, which is not another listed backdoor")
    asr_samples = raw.get("asr_samples", 2000)
    if asr_samples is not None and (
        not isinstance(asr_samples, int) or isinstance(asr_samples, bool) or not 10 <= asr_samples <= MAX_ASR_SAMPLES
    ):
        raise ConfigError(f"backdoors.asr_samples must be an integer in [10, {MAX_ASR_SAMPLES}], or null")
    codecs = raw.get("codecs", list(CODECS))
    if not isinstance(codecs, list) or not codecs or any(c not in CODECS for c in codecs):
        raise ConfigError(f"backdoors.codecs must list some of {', '.join(CODECS)}")
    qualities = raw.get("qualities", [10, 30, 50, 70, 90])
    if (
        not isinstance(qualities, list)
        or not qualities
        or not all(isinstance(q, int) and not isinstance(q, bool) and 1 <= q <= 95 for q in qualities)
    ):
        raise ConfigError("backdoors.qualities must be a list of integers in [1, 95]")
    grid_raw = raw.get("transformations", {k: list(v) for k, v in DEFAULT_TRANSFORMATIONS.items()})
    if not isinstance(grid_raw, Mapping) or not grid_raw:
        raise ConfigError("backdoors.transformations must map transformations to lists of strengths")
    grid: dict[str, tuple[float, ...]] = {}
    for k, v in grid_raw.items():
        if k not in (*TRANSFORMATIONS, COMBINED):
            raise ConfigError(f"unknown transformation {k!r}; known: {', '.join((*TRANSFORMATIONS, COMBINED))}")
        what = f"backdoors.transformations.{k}"
        if not isinstance(v, list) or not v or len(v) > MAX_STRENGTHS or not all(_is_number(s) for s in v):
            raise ConfigError(f"{what} must be a list of 1 to {MAX_STRENGTHS} strengths")
        for s in v:
            check_strength(k, s, what)
        grid[k] = tuple(float(s) for s in v)
    return BackdoorSection(tuple(specs), asr_samples, tuple(codecs), tuple(qualities), grid)


def read_backdoors(raw: Any, so_far: Mapping[str, Any]) -> BackdoorSection:
    """The ``backdoors:`` section (:attr:`advparams.house.Section.read`): its labels may not
    repeat the schemes' and watermarks'."""
    return section_from_mapping(raw, [*so_far["schemes"], *so_far["watermarks"]])


__all__ = [
    "read_backdoors",
    "COMBINED",
    "DEFAULT_TRANSFORMATIONS",
    "MEASURES",
    "BackdoorSection",
    "BackdoorSpec",
    "section_from_mapping",
]
