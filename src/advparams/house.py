"""The house: every family declares, in its own folder, what the shared machinery needs
from it, and the machinery loops over the declarations.

A family (locks, watermarks, backdoors, detection, fingerprints, tracing, ...) is a
folder of the package with a ``family.py`` that calls :func:`register_family`; an owner's
or a test's family is a module brought in with ``--import`` or a config's ``imports:``
that does the same. From its :class:`Family` the house takes:

* its **config section** (:class:`Section`): the key in an evaluation config, the reader
  that turns the YAML value into a frozen dataclass, the writer that gives it back, and
  the checks of the run's architectures;
* its **study**, built from the run's context, whose units the executors run;
* its **row kinds** (every row a run writes has a registered kind);
* its **report section** and **plots**, rebuilt from the rows;
* its **CLI verbs** and the **registries** ``advparams list`` shows.

Nothing shared names a family: :class:`~advparams.evaluation.EvalConfig`, the engine,
``results.jsonl`` reading, :func:`~advparams.reports.build_report`, the plots,
``advparams list`` and the command line all read :func:`families`.

Example:
    >>> fam = Family("example-family", order=999, what="an example", kinds=(RowKind("example-row"),))
    >>> with registered(fam):
    ...     "example-row" in row_kinds()
    True
    >>> "example-row" in row_kinds()
    False
"""

from __future__ import annotations

import fnmatch
import importlib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RowKind:
    """A kind of result row and the metrics its rows may carry.

    A row whose metrics hold a name its kind does not declare is refused when it is made
    and when it is read back, and a report that asks a row for an undeclared name fails
    (:class:`advparams.evaluation.rows.Metrics`): a typo is an error, not a blank cell.

    Attributes:
        name: the kind (``"lock"``), unique in the house.
        metrics: the names its ``metrics`` may hold; a name may be a shell pattern
            (``"clean_*"``: one per fact a detector measures; ``"*"``: keyed by data, such
            as a histogram's tensor names).
        what: one line on what a row of this kind records.
    """

    name: str
    metrics: tuple[str, ...] = ()
    what: str = ""

    def allows(self, metric: str) -> bool:
        """Whether ``metric`` is one of this kind's metrics."""
        return metric in self.metrics or any(
            ("*" in m or "?" in m) and fnmatch.fnmatchcase(metric, m) for m in self.metrics
        )


SESSION = RowKind(
    "session",
    (
        "rows_added",
        "units",
        "units_run",
        "executor",
        "environment",
        "command",
        "interrupted",
        "stopped_by",
        "merged_from",
    ),  # fmt: skip
    "one invocation of the evaluation: wall time, environment, the command line that started it",
)
"""The row kind the house itself writes (one ``session`` row per invocation)."""
HOUSE_KINDS = (SESSION,)

FAMILY_MODULE = "family"
"""The module a package folder holds to declare its family (``advparams/<folder>/family.py``)."""


@dataclass(frozen=True)
class Section:
    """A family's part of an evaluation config.

    Attributes:
        key: the config's key (``backdoors:``).
        read: ``read(value, so_far)`` turns the YAML value into the section (a frozen
            dataclass), raising :class:`~advparams.errors.ConfigError` naming the key;
            ``so_far`` holds the core values already read (``model``, ``schemes``,
            ``watermarks``: their titles) and the sections read before it, by key.
        write: the section back to a JSON/YAML-ready dict that ``read`` accepts (default:
            its ``to_dict()``).
        is_work: the section alone is something to run (a config needs at least one).
        check_models: ``check_models(config, run_model)`` checks the section's
            architectures and options against the run's model (built on the meta device)
            before any work starts.
    """

    key: str
    read: Callable[[Any, Mapping[str, Any]], Any]
    write: Callable[[Any], dict[str, Any]] | None = None
    is_work: bool = True
    check_models: Callable[[Any, Any], None] | None = None

    def to_dict(self, value: Any) -> dict[str, Any]:
        """The section as written into a config."""
        return self.write(value) if self.write is not None else dict(value.to_dict())


@dataclass(frozen=True)
class Family:
    """What one family gives the house.

    Attributes:
        name: the family's name (unique).
        order: where its study, report section and plots come (lower first).
        what: one line for ``--help`` and the docs.
        section: its config section, if it has one.
        study: builds its study from the run's :class:`~advparams.evaluation.context.RunContext`.
        kinds: the row kinds its study writes (:class:`RowKind`).
        report: ``report(rows_by_kind, config)`` gives its Markdown lines (empty: none).
        plots: ``plots(rows, config, folder, plt)`` writes its figures; returns their names.
        cli: ``cli(subparsers)`` adds its verbs to the command line.
        registries: what ``advparams list`` shows: name -> (registry, where names are used).
        wants_null_models: ``wants_null_models(config)``: the run needs null models.
    """

    name: str
    order: int
    what: str
    section: Section | None = None
    study: Callable[[Any], Any] | None = None
    kinds: tuple[RowKind, ...] = ()
    report: Callable[[Mapping[str, list[Any]], Any], list[str]] | None = None
    plots: Callable[[Any, Any, Path, Any], list[str]] | None = None
    cli: Callable[[Any], None] | None = None
    registries: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    wants_null_models: Callable[[Any], bool] | None = None


_FAMILIES: dict[str, Family] = {}
_LOCK = threading.RLock()
_found = False


def _discover() -> None:
    """Imports every ``advparams/<folder>/family.py`` once (each registers its family)."""
    global _found
    with _LOCK:
        if _found:
            return
        _found = True
        root = Path(__file__).parent
        for folder in sorted(p for p in root.iterdir() if (p / f"{FAMILY_MODULE}.py").is_file()):
            importlib.import_module(f"advparams.{folder.name}.{FAMILY_MODULE}")


def register_family(family: Family) -> Family:
    """Adds ``family`` to the house (its name, row kinds and config key must be new).

    Raises:
        ValueError: a name, row kind or config key already taken.
    """
    with _LOCK:
        if family.name in _FAMILIES:
            raise ValueError(f"family {family.name!r} is already registered")
        if not all(isinstance(k, RowKind) for k in family.kinds):
            raise TypeError(f"family {family.name!r}: kinds must be RowKind declarations")
        taken = {k.name for f in _FAMILIES.values() for k in f.kinds} | {k.name for k in HOUSE_KINDS}
        names = [k.name for k in family.kinds]
        clash = [k for k in names if k in taken]
        if clash or len(set(names)) != len(names):
            raise ValueError(f"family {family.name!r}: row kind {(clash or names)[0]!r} is taken")
        keys = {f.section.key for f in _FAMILIES.values() if f.section is not None}
        if family.section is not None and family.section.key in keys:
            raise ValueError(f"family {family.name!r}: config key {family.section.key!r} is taken")
        _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Removes a family (for tests that register one for a while)."""
    with _LOCK:
        _FAMILIES.pop(name, None)


@contextmanager
def registered(family: Family) -> Iterator[Family]:
    """Registers ``family`` for the ``with`` block."""
    register_family(family)
    try:
        yield family
    finally:
        unregister_family(family.name)


def families() -> tuple[Family, ...]:
    """Every registered family, by :attr:`Family.order` (then name)."""
    _discover()
    with _LOCK:
        return tuple(sorted(_FAMILIES.values(), key=lambda f: (f.order, f.name)))


def sections() -> tuple[Section, ...]:
    """Every family's config section, in family order."""
    return tuple(f.section for f in families() if f.section is not None)


def section_keys() -> tuple[str, ...]:
    """The config keys of :func:`sections`."""
    return tuple(s.key for s in sections())


def row_kinds() -> tuple[str, ...]:
    """Every registered row kind's name: the families' in order, then the house's."""
    return tuple(k.name for f in families() for k in f.kinds) + tuple(k.name for k in HOUSE_KINDS)


def row_kind(name: str) -> RowKind | None:
    """The declaration of row kind ``name`` (``None``: no family declares it)."""
    for kind in (*(k for f in families() for k in f.kinds), *HOUSE_KINDS):
        if kind.name == name:
            return kind
    return None


def registries() -> dict[str, tuple[Any, str]]:
    """What ``advparams list`` shows: registry name -> (registry, where its names are used)."""
    out: dict[str, tuple[Any, str]] = {}
    for f in families():
        out.update(f.registries)
    return out


__all__ = [
    "FAMILY_MODULE",
    "HOUSE_KINDS",
    "SESSION",
    "Family",
    "RowKind",
    "Section",
    "families",
    "register_family",
    "registered",
    "registries",
    "row_kind",
    "row_kinds",
    "section_keys",
    "sections",
    "unregister_family",
]
