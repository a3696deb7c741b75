"""The entries of an evaluation config's lists: one scheme, one watermark (or any other
family's member), one attack with its settings (each a frozen dataclass;
:mod:`advparams.evaluation.config` reads them)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar


class Titled:
    """A config entry that tables call by its ``label``, or else by the field
    :attr:`named_by` names (its registered name, or its architecture)."""

    named_by: ClassVar[str] = "name"
    label: str | None

    @property
    def title(self) -> str:
        """The label, or the name."""
        return self.label or str(getattr(self, self.named_by))


TitledT = TypeVar("TitledT", bound=Titled)


def titled(items: Iterable[TitledT], title: str, what: str) -> TitledT:
    """The entry of ``items`` whose title is ``title``.

    Raises:
        ConfigError: none is (``what`` names the kind: ``"backdoor"``).
    """
    from advparams.errors import ConfigError

    for item in items:
        if item.title == title:
            return item
    raise ConfigError(f"the config has no {what} labelled {title!r}")


def built_once(registry: Any, specs: Iterable[MemberSpec], what: str) -> list[str]:
    """Builds every entry with its options (a wrong name or option fails now) and refuses a
    title listed twice; returns the titles."""
    from advparams.errors import ConfigError

    titles: list[str] = []
    for spec in specs:
        registry.build(spec.name, dict(spec.options))
        if spec.title in titles:
            raise ConfigError(f"{what} {spec.title!r} is listed twice; give one a label")
        titles.append(spec.title)
    return titles


@dataclass(frozen=True)
class SchemeSpec(Titled):
    """One scheme to evaluate.

    Attributes:
        name: registered scheme name.
        options: its configuration (``seed`` is set from the run's seed).
        match_params: lock with the same number of changed values as this other scheme
            (listed earlier) at the same seed: the scheme's budget option is set to
            that scheme's ``params_changed``.
        label: how tables and plots call it (default: the name).
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    match_params: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class MemberSpec(Titled):
    """One registered member of a family, with its options and the label tables use.

    Attributes:
        name: registered name.
        options: its configuration (``seed`` is set from the run's seed).
        label: how tables call it (default: the name).
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None


@dataclass(frozen=True)
class WatermarkSpec(MemberSpec):
    """One watermark to evaluate (``name``: a registered watermark)."""


@dataclass(frozen=True)
class AttackSpec:
    """One attack and the settings to run it with.

    Attributes:
        name: registered attack name.
        options: fixed configuration for every setting (``seed`` comes from the run).
        grid: option -> list of values; every combination is one setting.
        cases: explicit settings, one mapping each (instead of a grid), for options that
            go in pairs such as ``{low: 1, high: 99}``.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    cases: tuple[Mapping[str, Any], ...] = ()

    def settings(self) -> Iterator[dict[str, Any]]:
        """The cases, or every combination of the grid in the order written (one empty
        setting if neither)."""
        if self.cases:
            for case in self.cases:
                yield dict(case)
            return
        keys = list(self.grid)
        for values in itertools.product(*(self.grid[k] for k in keys)):
            yield dict(zip(keys, values, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict that :func:`attack_spec_from_mapping` reads back."""
        return {
            "name": self.name,
            "options": dict(self.options),
            "grid": {k: list(v) for k, v in self.grid.items()},
            "cases": [dict(c) for c in self.cases],
        }


def attack_spec_from_mapping(raw: Any, what: str) -> AttackSpec:
    """Reads one entry of an attacks list (``name``, ``options``, ``grid`` or ``cases``),
    checking its shape; the caller checks the name and every setting against its family.

    Raises:
        ConfigError: a wrong key or type, an empty grid, both grid and cases, or more
            settings than :data:`~advparams.evaluation.limits.MAX_SETTINGS`.
    """
    from advparams.errors import ConfigError
    from advparams.evaluation.limits import check_settings
    from advparams.evaluation.reading import known_keys, mapping

    a = mapping(raw, what)
    known_keys(a, {"name", "options", "grid", "cases"}, what)
    if not isinstance(a.get("name"), str):
        raise ConfigError(f"{what} needs a name (a string)")
    options = mapping(a.get("options"), f"{what}.options")
    grid = {}
    for k, v in mapping(a.get("grid"), f"{what}.grid").items():
        values = v if isinstance(v, list) else [v]
        if not values:
            raise ConfigError(f"{what}.grid.{k} is empty")
        grid[k] = tuple(values)
    cases_raw = a.get("cases") or []
    if not isinstance(cases_raw, list):
        raise ConfigError(f"{what}.cases must be a list of mappings")
    cases = tuple(mapping(c, f"{what}.cases[{j}]") for j, c in enumerate(cases_raw))
    if cases and grid:
        raise ConfigError(f"{what} has both grid and cases; use one")
    check_settings(grid, cases, what)
    return AttackSpec(a["name"], options, grid, cases)


__all__ = [
    "AttackSpec",
    "MemberSpec",
    "SchemeSpec",
    "Titled",
    "WatermarkSpec",
    "attack_spec_from_mapping",
    "built_once",
    "titled",
]
