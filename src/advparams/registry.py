"""A small name -> object registry, one per family (schemes, models, datasets, ...).

The registry is the single list behind CLI choices, ``list_*()`` helpers and the
parametrised contract tests, so a newly registered method is offered and tested at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from advparams.errors import ConfigError, UnknownNameError

T = TypeVar("T")
C = TypeVar("C")


class Registry(Generic[T]):
    """Maps names to objects of one family.

    Args:
        family: the family's name, used in error messages ("model", "scheme", ...).
        hint: added to the error for an unknown name (how to register one of your own).

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

    def __init__(self, family: str, *, hint: str = "") -> None:
        self.family = family
        self.hint = hint
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
            hint = f"; {self.hint}" if self.hint else ""
            raise UnknownNameError(f"unknown {self.family} {str(name)[:100]!r}; known: {known}{hint}") from None

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
        accepted = [p for p in params if p != "self"]
        raise ConfigError(
            f"{what} got unknown option(s) {', '.join(unknown)}{did_you_mean(unknown, accepted)}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )


def _finite(v: float) -> bool:
    """Whether ``v`` is a finite float (an integer too large for a float is not)."""
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def did_you_mean(unknown: Sequence[str], known: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the known names closest to the unknown ones, or "".

    Example:
        >>> did_you_mean(["max_param"], ["max_params", "seed"])
        ' (did you mean max_params?)'
    """
    known = list(known)
    close = [m for u in unknown for m in difflib.get_close_matches(str(u), known, n=1, cutoff=0.6)]
    return f" (did you mean {', '.join(dict.fromkeys(close))}?)" if close else ""


def config_from_dict(config_cls: type[T], options: Mapping[str, Any], *, what: str = "config") -> T:
    """Builds a frozen config dataclass from a mapping, refusing unknown keys.

    Lists are turned into tuples so that YAML/JSON values fit tuple-typed fields.
    """
    fields = {f.name for f in dataclasses.fields(config_cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(
            f"{what} got unknown option(s) {', '.join(unknown)}{did_you_mean(unknown, fields)}; "
            f"accepted: {', '.join(sorted(fields))}"
        )
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
        return "" if isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v) else "a finite number"
    if hint is str:
        return "" if isinstance(v, str) else "a string"
    if origin is tuple:
        element = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if element is str and isinstance(v, str):
            return f'a list of strings, such as ["{v}"] (a bare string would be read letter by letter)'
        if not isinstance(v, tuple):
            return "a list"
        if element is not None:
            bad = [x for x in v if _type_problem(x, element)]
            if bad:
                return f"a list of which every item is {_type_problem(bad[0], element)}"
        return ""
    return ""


def check_config(config: Any) -> None:
    """Checks every field of a config dataclass against its annotation (scalars,
    optionals, literals, tuples and their items), naming the option, the value and what
    is allowed.

    Raises:
        ConfigError: a field holds a value of the wrong type.
    """
    hints = _field_types(type(config))
    for f in dataclasses.fields(config):
        problem = _type_problem(getattr(config, f.name), hints.get(f.name))
        if problem:
            raise ConfigError(
                f"{type(config).__name__} option {f.name} must be {problem}, got {_short(getattr(config, f.name))}"
            )


def validated(cls: type[T]) -> type[T]:
    """Class decorator, placed *under* ``@dataclass(frozen=True)``: the config checks
    its fields' types (:func:`check_config`) when it is built, before the class's own
    ``__post_init__`` checks ranges, and a ``ValueError``/``TypeError`` of those checks
    becomes a :class:`ConfigError` (still a ``ValueError``). So a config is valid
    however it was made: from YAML, ``--set`` or Python.

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... @validated
        ... class C:
        ...     rate: float = 0.3
        >>> C(rate="high")
        Traceback (most recent call last):
        ...
        advparams.errors.ConfigError: C option rate must be a finite number, got 'high'
    """
    own = cls.__dict__.get("__post_init__")

    def __post_init__(self: Any) -> None:
        check_config(self)
        after = own or getattr(super(cls, self), "__post_init__", None)  # type: ignore[arg-type]
        if after is None:
            return
        try:
            after(self) if own else after()
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{type(self).__name__}: {exc}") from None

    cls.__post_init__ = __post_init__  # type: ignore[attr-defined]
    return cls


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


def resolve_config(config_cls: type[C], config: Any, options: Mapping[str, Any], *, what: str) -> C:
    """A config of ``config_cls`` from a config object, a mapping or keyword options (a
    mapping and options are merged; options given beside an object replace its fields)."""
    if isinstance(config, config_cls):
        if not options:
            return config
        return config_from_dict(config_cls, config_to_dict(config) | dict(options), what=what)
    if config is None:
        return config_from_dict(config_cls, dict(options), what=what)
    if isinstance(config, Mapping):
        return config_from_dict(config_cls, dict(config) | dict(options), what=what)
    raise ConfigError(
        f"{what} takes its config ({config_cls.__name__}), a mapping of options or keyword options; "
        f"got {type(config).__name__}"
    )


class Configurable(Generic[C]):
    """Base of every registered method family (schemes, attacks, ...).

    The constructor takes the configuration only, so an object can be built from a name
    and a dict, printed and compared: a ``Config`` object, a mapping of options or
    keyword options (``AdvParams(max_params=5)``, ``AdvParams({"max_params": 5})`` and
    ``AdvParams(AdvParamsConfig(max_params=5))`` are the same); every value is checked
    when the config is built.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    tiny: ClassVar[Mapping[str, Any]] = {}
    """Options that make the method run in seconds on the toolkit's tiny test tasks (tiny
    nets, 1x16x16 synthetic data): what contract tests build every registered member with,
    so a new member is tested at a small size the moment it is registered."""

    def __init__(self, config: C | Mapping[str, Any] | None = None, /, **options: Any) -> None:
        self.config: C = resolve_config(self.Config, config, options, what=getattr(self, "name", type(self).__name__))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def config_dict(self) -> dict[str, Any]:
        """The resolved configuration as a JSON-ready dict."""
        return config_to_dict(self.config)
