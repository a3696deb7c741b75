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
from typing import Any, Literal

from advparams.backdoors.measure import COMBINED, DEFAULT_TRANSFORMATIONS
from advparams.errors import ConfigError
from advparams.evaluation.limits import MAX_ASR_SAMPLES, MAX_STRENGTHS, check_strength
from advparams.evaluation.reading import option, read_typed, write_typed
from advparams.evaluation.specs import Titled, titled
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
    measure: tuple[Literal["compression", "physical"], ...] = ()
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

    attacks: tuple[BackdoorSpec, ...] = option(nonempty=True)
    asr_samples: int | None = option(2000, lo=10, hi=MAX_ASR_SAMPLES)
    codecs: tuple[str, ...] = option(CODECS, nonempty=True)
    qualities: tuple[int, ...] = option((10, 30, 50, 70, 90), lo=1, hi=95, nonempty=True)
    transformations: Mapping[str, tuple[float, ...]] = option(DEFAULT_TRANSFORMATIONS)

    def spec(self, title: str) -> BackdoorSpec:
        """The backdoor labelled ``title``."""
        return titled(self.attacks, title, "backdoor")

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict that :func:`section_from_mapping` reads back."""
        return dict(write_typed(self))


def _check_specs(section: BackdoorSection, taken: list[str]) -> None:
    """Every backdoor built with its options, labelled once, compared with another."""
    from advparams.backdoors import BACKDOORS

    titles: list[str] = []
    for i, spec in enumerate(section.attacks):
        try:  # validates the name and the options (PTB's ranges within the transformations' limits)
            BACKDOORS.build(spec.name, dict(spec.options))
        except ConfigError as exc:
            raise ConfigError(f"backdoors.attacks[{i}].options: {exc}") from None
        if spec.title in taken + titles:
            raise ConfigError(f"{spec.title!r} is listed twice; give one a label")
        titles.append(spec.title)
    for s in section.attacks:
        if s.compare is not None and (s.compare not in titles or s.compare == s.title):
            raise ConfigError(f"backdoor {s.title} compares with {s.compare!r}, which is not another listed backdoor")


def _check_grids(section: BackdoorSection) -> None:
    """The codecs known, every transformation known and its strengths within its limit."""
    if any(c not in CODECS for c in section.codecs):
        raise ConfigError(f"backdoors.codecs must list some of {', '.join(CODECS)}")
    if not section.transformations:
        raise ConfigError("backdoors.transformations must map transformations to lists of strengths")
    for k, v in section.transformations.items():
        if k not in (*TRANSFORMATIONS, COMBINED):
            raise ConfigError(f"unknown transformation {k!r}; known: {', '.join((*TRANSFORMATIONS, COMBINED))}")
        what = f"backdoors.transformations.{k}"
        if not v or len(v) > MAX_STRENGTHS:
            raise ConfigError(f"{what} must be a list of 1 to {MAX_STRENGTHS} strengths")
        for strength in v:
            check_strength(k, strength, what)


def section_from_mapping(raw: Any, taken: list[str]) -> BackdoorSection:
    """Reads the ``backdoors:`` section (:func:`~advparams.evaluation.reading.read_typed`)
    and checks it: ``taken`` are labels already used by the config's schemes and watermarks."""
    section = read_typed(BackdoorSection, raw, "backdoors")
    _check_specs(section, taken)
    _check_grids(section)
    return section


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
