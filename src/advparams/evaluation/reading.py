"""Readers shared by the evaluation config and its sections: each checks one value of a
parsed YAML or JSON mapping and raises :class:`~advparams.errors.ConfigError` naming it
by its full dotted place in the config (``tracing.models[0].train``)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from advparams.errors import ConfigError
from advparams.files import values

__all__ = ["integer", "is_int", "known_keys", "mapping", "option", "read_typed", "write_typed"]

T = TypeVar("T")


def mapping(value: Any, what: str) -> dict[str, Any]:
    """``value`` as a dict (``None`` reads as empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a mapping, got {type(value).__name__}")
    return dict(value)


def known_keys(d: Mapping[str, Any], allowed: set[str], what: str) -> None:
    """Refuses keys of ``d`` outside ``allowed``, listing those accepted."""
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(f"{what} has unknown key(s) {', '.join(unknown)}; accepted: {', '.join(sorted(allowed))}")


def is_int(v: Any) -> bool:
    """Whether ``v`` is an integer (``True`` and ``False`` are not)."""
    return isinstance(v, int) and not isinstance(v, bool)


def integer(v: Any, what: str, lo: int, hi: int) -> int:
    """``v``, an integer in ``[lo, hi]`` (:func:`advparams.files.values.integer`'s check)."""
    return values.integer(v, what=what, lo=lo, hi=hi, error=ConfigError)


# ------------------------------------------------------------------ typed sections


def option(
    default: Any = dataclasses.MISSING,
    *,
    lo: float | None = None,
    hi: float | None = None,
    open_range: bool = False,
    nonempty: bool = False,
) -> Any:
    """A field of a config section with the checks :func:`read_typed` makes: numbers (a
    list's items too) in ``[lo, hi]`` (``(lo, hi)`` with ``open_range``), a list that is
    not empty. A list or mapping default is given as a tuple or a mapping."""
    meta = {"lo": lo, "hi": hi, "open": open_range, "nonempty": nonempty}
    if isinstance(default, Mapping):
        frozen = dict(default)
        return dataclasses.field(default_factory=lambda: dict(frozen), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _kind(hint: Any, meta: Mapping[str, Any]) -> str:
    """What a value of type ``hint`` must be, for an error message."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    lo, hi = meta.get("lo"), meta.get("hi")
    where = ""
    if lo is not None and hi is not None:
        where = f" in ({lo:g}, {hi:g})" if meta.get("open") else f" in [{lo:g}, {hi:g}]"
    if hint is int:
        return f"an integer{where}"
    if hint is float:
        return f"a number{where}"
    if hint is bool:
        return "true or false"
    if hint is str:
        return "a string"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (types.UnionType, typing.Union):
        return " or ".join("null" if a is type(None) else _kind(a, meta) for a in args)
    if origin is tuple:
        return f"a{' non-empty' if meta.get('nonempty') else ''} list of {_plural(_kind(args[0], meta))}"
    if origin in (Mapping, dict) or hint is Mapping:
        return "a mapping"
    return f"a mapping of {getattr(hint, '__name__', str(hint))} options"


def _plural(kind: str) -> str:
    for one, many in (("an integer", "integers"), ("a number", "numbers"), ("a string", "strings")):
        if kind.startswith(one):
            return many + kind[len(one) :]
    return kind


def _value(v: Any, hint: Any, meta: Mapping[str, Any], path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    bad = ConfigError(f"{path} must be {_kind(hint, meta)}, got {_short(v)}")
    if origin in (types.UnionType, typing.Union):
        if v is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        return _value(v, hint, meta, path)
    if hint is Any:
        return v
    if hint in (int, float):
        ok = is_int(v) if hint is int else isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        lo, hi = meta.get("lo"), meta.get("hi")
        if ok and lo is not None and hi is not None:
            ok = lo < v < hi if meta.get("open") else lo <= v <= hi
        if not ok:
            raise bad
        return float(v) if hint is float else v
    if hint in (bool, str):
        if not isinstance(v, hint):
            raise bad
        return v
    if origin is typing.Literal:
        if v not in args:
            raise bad
        return v
    if origin is tuple:
        if not isinstance(v, (list, tuple)) or (meta.get("nonempty") and not v):
            raise bad
        return tuple(_value(x, args[0], meta, f"{path}[{i}]") for i, x in enumerate(v))
    if origin in (Mapping, dict) or hint is Mapping:
        m = mapping(v, path)
        inner = args[1] if len(args) == 2 else Any
        return {k: _value(x, inner, meta, f"{path}.{k}") for k, x in m.items()}
    if dataclasses.is_dataclass(hint):
        return read_typed(hint, v, path)  # type: ignore[arg-type]
    raise TypeError(f"{path}: no reader for {hint!r}")


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def read_typed(cls: type[T], raw: Any, path: str) -> T:
    """Reads the frozen dataclass ``cls`` from a parsed YAML value (``path``: its place in
    the config, ``""`` for the top level): every key one of its
    fields (an unknown key is refused with its full path), every value checked against the
    field's annotation (integers, numbers, booleans, strings, literals, ``X | None``, lists,
    mappings, nested sections) and :func:`option` checks; a missing field takes its
    default. The class's own ``__post_init__`` checks what concerns several fields.

    Raises:
        ConfigError: naming the first value at fault by its full place (``detection.frrs[1]``).

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class Grid:
        ...     rates: tuple[float, ...] = option((0.1,), lo=0, hi=1, nonempty=True)
        >>> read_typed(Grid, {"rates": [0.2, 0.5]}, "grid")
        Grid(rates=(0.2, 0.5))
        >>> read_typed(Grid, {"rates": [2]}, "grid")
        Traceback (most recent call last):
        ...
        advparams.errors.ConfigError: grid.rates[0] must be a number in [0, 1], got 2
    """
    where = path or "the config"  # "": the top level
    m = mapping(raw, where)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    known_keys(m, set(fields), where)
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in m:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where} needs {name!r}")
            continue
        values[name] = _value(m[name], hints[name], f.metadata, f"{path}.{name}" if path else name)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: {exc}") from None


def write_typed(obj: Any) -> Any:
    """A section as :func:`read_typed` reads it back: dataclasses as mappings of their
    fields, tuples as lists, mappings as dicts."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: write_typed(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (tuple, list)):
        return [write_typed(x) for x in obj]
    if isinstance(obj, Mapping):
        return {k: write_typed(v) for k, v in obj.items()}
    return obj
