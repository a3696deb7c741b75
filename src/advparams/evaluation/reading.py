"""Readers shared by the evaluation config and its sections: each checks one value of a
parsed YAML or JSON mapping and raises :class:`~advparams.errors.ConfigError` naming it
by its full dotted place in the config (``tracing.models[0].train``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from advparams.errors import ConfigError
from advparams.files import values

__all__ = ["integer", "is_int", "known_keys", "mapping"]


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
