"""A small name -> object registry, one per family (schemes, models, datasets, ...).

The registry is the single list behind CLI choices, ``list_*()`` helpers and the
parametrised contract tests, so a newly registered method is offered and tested at once.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from advparams.errors import ConfigError, UnknownNameError

T = TypeVar("T")
C = TypeVar("C")


class Registry(Generic[T]):
    """Maps names to objects of one family.

    Args:
        family: the family's name, used in error messages ("model", "scheme", ...).

    Example:
        >>> MODELS = Registry("model")
        >>> @MODELS.register("tiny")
        ... def tiny(num_classes: int = 2) -> int:
        ...     return num_classes
        >>> MODELS.names()
        ['tiny']
        >>> MODELS.build("tiny", {"num_classes": 3})
        3
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name`` (which must be new)."""

        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.family} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Returns the object registered as ``name``; an unknown name lists the known ones."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownNameError(f"unknown {self.family} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def build(self, name: str, options: Mapping[str, Any] | None = None) -> Any:
        """Builds the registered object with ``options``.

        A class with a ``Config`` dataclass is built as ``cls(Config(**options))``; any
        other callable is called with ``options`` as keyword arguments. Unknown option
        names are an error that names them.
        """
        obj = self.get(name)
        opts = dict(options or {})
        config_cls = getattr(obj, "Config", None)
        if config_cls is not None and dataclasses.is_dataclass(config_cls):
            return obj(config_from_dict(config_cls, opts, what=f"{self.family} {name!r}"))  # type: ignore[arg-type,operator]
        if not callable(obj):
            raise TypeError(f"{self.family} {name!r} is not buildable")
        check_kwargs(obj, opts, what=f"{self.family} {name!r}")
        return obj(**opts)


def check_kwargs(fn: Callable[..., Any], options: Mapping[str, Any], *, what: str) -> None:
    """Raises :class:`ConfigError` when ``options`` holds names ``fn`` does not accept."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(options) - set(params))
    if unknown:
        accepted = ", ".join(p for p in params if p != "self") or "none"
        raise ConfigError(f"{what} got unknown option(s) {', '.join(unknown)}; accepted: {accepted}")


def config_from_dict(config_cls: type[T], options: Mapping[str, Any], *, what: str = "config") -> T:
    """Builds a frozen config dataclass from a mapping, refusing unknown keys.

    Lists are turned into tuples so that YAML/JSON values fit tuple-typed fields.
    """
    fields = {f.name for f in dataclasses.fields(config_cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(f"{what} got unknown option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(fields))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    hints = _field_types(config_cls)
    for k, v in values.items():
        problem = _type_problem(v, hints.get(k))
        if problem:
            raise ConfigError(f"{what} option {k} must be {problem}, got {_short(v)}")
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: {exc}") from None


def _field_types(config_cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(config_cls)
    except (NameError, TypeError):  # an annotation that cannot be resolved: no checks
        return {}


def _short(v: Any) -> str:
    text = repr(v) if not (isinstance(v, int) and v.bit_length() > 100) else "a very large integer"
    return text if len(text) <= 60 else text[:57] + "..."


def _type_problem(v: Any, hint: Any) -> str:
    """What ``v`` should have been for a field annotated ``hint`` ("" when it fits; only
    plain scalar, optional, literal and tuple annotations are checked)."""
    if hint is None or hint is Any:
        return ""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if v is None and type(None) in args:
            return ""
        problems = [_type_problem(v, a) for a in args if a is not type(None)]
        return "" if any(p == "" for p in problems) else " or ".join(problems)
    if origin is typing.Literal:
        return "" if v in args and type(v) in {type(a) for a in args} else "one of " + ", ".join(map(repr, args))
    if hint is bool:
        return "" if isinstance(v, bool) else "true or false"
    if hint is int:
        return "" if isinstance(v, int) and not isinstance(v, bool) else "an integer"
    if hint is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
        return "" if ok else "a finite number"
    if hint is str:
        return "" if isinstance(v, str) else "a string"
    if origin is tuple:
        return "" if isinstance(v, tuple) else "a list"
    return ""


@dataclasses.dataclass(frozen=True)
class OptionDoc:
    """One option of a config dataclass, for help texts."""

    name: str
    default: Any
    doc: str


def _attribute_docs(config_cls: type) -> dict[str, str]:
    """Attribute descriptions from a Google-style ``Attributes:`` docstring section."""
    doc = config_cls.__doc__ or ""
    out: dict[str, str] = {}
    current = None
    for line in doc.split("Attributes:", 1)[-1].splitlines():
        m = re.match(r"\s{4,8}(\w+): (.*)", line)
        if m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current and line.strip():
            out[current] += " " + line.strip()
    return out


def option_docs(config_cls: type) -> list[OptionDoc]:
    """Every field of ``config_cls`` with its default (``"required"`` when none) and the
    description from its docstring or, failing that, a base class's.

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class C:
        ...     \"\"\"Attributes:
        ...         rate: share of weights zeroed.
        ...     \"\"\"
        ...     rate: float = 0.3
        >>> option_docs(C)
        [OptionDoc(name='rate', default=0.3, doc='share of weights zeroed.')]
    """
    docs: dict[str, str] = {}
    for base in reversed(config_cls.__mro__):
        if dataclasses.is_dataclass(base):
            docs.update(_attribute_docs(base))
    out = []
    for f in dataclasses.fields(config_cls):  # type: ignore[arg-type]
        default = f.default if f.default is not dataclasses.MISSING else "required"
        out.append(OptionDoc(f.name, default, docs.get(f.name, "")))
    return out


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


class Configurable(Generic[C]):
    """Base of every registered method family (schemes, attacks, ...).

    The constructor takes the configuration only (a frozen dataclass, ``cls.Config()`` by
    default), so an object can be built from a name and a dict, printed and compared.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    tiny: ClassVar[Mapping[str, Any]] = {}
    """Options that make the method run in seconds on the toolkit's tiny test tasks (tiny
    nets, 1x16x16 synthetic data): what contract tests build every registered member with,
    so a new member is tested at a small size the moment it is registered."""

    def __init__(self, config: C | None = None) -> None:
        self.config: C = config if config is not None else self.Config()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def config_dict(self) -> dict[str, Any]:
        """The resolved configuration as a JSON-ready dict."""
        return config_to_dict(self.config)
