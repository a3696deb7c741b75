"""Field checks for parsed files: every value's type and range checked before use.

Example:
    >>> integer(3, what="bits", lo=1, hi=8)
    3
    >>> integer(True, what="bits", lo=1, hi=8)
    Traceback (most recent call last):
    ...
    advparams.errors.AdvParamsError: bits must be an integer in [1, 8], got True
"""

from __future__ import annotations

import math
from typing import Any

from advparams.errors import AdvParamsError


def integer(value: Any, *, what: str, lo: int, hi: int, error: type[AdvParamsError] = AdvParamsError) -> int:
    """``value`` if it is an integer (not a bool) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise error(f"{what} must be an integer in [{lo}, {hi}], got {_show(value)}")
    return value


def number(
    value: Any, *, what: str, lo: float = -math.inf, hi: float = math.inf, error: type[AdvParamsError] = AdvParamsError
) -> float:
    """``value`` as a float if it is a finite int or float (not a bool) in ``[lo, hi]``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        try:
            f = float(value)
        except OverflowError:
            ok = False
        else:
            ok = math.isfinite(f) and lo <= f <= hi
    if not ok:
        raise error(f"{what} must be a finite number in [{lo}, {hi}], got {_show(value)}")
    return f


def string(value: Any, *, what: str, max_len: int = 4096, error: type[AdvParamsError] = AdvParamsError) -> str:
    """``value`` if it is a string of at most ``max_len`` characters."""
    if not isinstance(value, str) or len(value) > max_len:
        raise error(f"{what} must be a string of at most {max_len} characters, got {_show(value)}")
    return value


def boolean(value: Any, *, what: str, error: type[AdvParamsError] = AdvParamsError) -> bool:
    """``value`` if it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise error(f"{what} must be true or false, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
