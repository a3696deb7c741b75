"""Formatting helpers shared by the report sections."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value).

    Example:
        >>> mean_std([1.0, 2.0, 3.0])
        (2.0, 1.0)
    """
    if not values:
        raise ValueError("mean_std of nothing")
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def fmt_pct(values: Sequence[float | None]) -> str:
    """``"mean ± std"`` of accuracies in percent, or ``"–"`` when there are none."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "–"
    m, s = mean_std([100.0 * v for v in vals])
    return f"{m:.2f} ± {s:.2f}" if len(vals) > 1 else f"{m:.2f}"


def fmt_num(values: Sequence[float | None], digits: int = 2) -> str:
    """``"mean ± std"`` of plain numbers; counts (``int`` values) print a whole mean or
    std without decimals.

    Example:
        >>> fmt_num([61706]), fmt_num([3, 3]), fmt_num([10, 11], 1), fmt_num([2.0])
        ('61706', '3 ± 0', '10.5 ± 0.7', '2.00')
    """
    vals = [v for v in values if v is not None]
    if not vals:
        return "–"
    m, s = mean_std([float(v) for v in vals])
    counts = all(isinstance(v, int) and not isinstance(v, bool) for v in vals)

    def num(x: float) -> str:
        return str(int(x)) if counts and x.is_integer() else f"{x:.{digits}f}"

    return f"{num(m)} ± {num(s)}" if len(vals) > 1 else num(m)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
