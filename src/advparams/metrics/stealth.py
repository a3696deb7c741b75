"""Stealth: can the locked weights be told apart from the original ones?

Pure functions: a two-sample Kolmogorov-Smirnov test per tensor (locked against
original values), and where each changed value sits in its tensor (rank and z-score).
An attacker who sees only the locked model sees the locked tensors; the KS test asks
whether their distribution betrays the lock, the ranks and z-scores whether the changed
values stand out one by one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from advparams.keys.key import Key


def kolmogorov_sf(x: float, terms: int = 100) -> float:
    """Survival function of the Kolmogorov distribution,
    ``Q(x) = 2 * sum_{k>=1} (-1)^(k-1) exp(-2 k^2 x^2)`` (1 for ``x <= 0``).

    Example:
        >>> round(kolmogorov_sf(1.3581), 4)  # the 5% critical value
        0.05
    """
    if x <= 0:
        return 1.0
    if x < 0.2:
        # The alternating series converges slowly here and Q(x) is 1 to double precision.
        return 1.0
    total = 0.0
    for k in range(1, terms + 1):
        term = math.exp(-2.0 * k * k * x * x)
        total += term if k % 2 else -term
        if term < 1e-17:
            break
    return min(1.0, max(0.0, 2.0 * total))


def ks_2samp(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Two-sided two-sample Kolmogorov-Smirnov test: ``(D, p-value)``.

    ``D`` is the largest gap between the two empirical CDFs; the p-value is the
    asymptotic one, ``Q(sqrt(n m / (n + m)) * D)`` (Smirnov 1948), accurate for the sizes
    of weight tensors (hundreds of values and more).

    Example:
        >>> a = torch.tensor([1.0, 2.0, 3.0, 4.0])
        >>> ks_2samp(a, a)
        (0.0, 1.0)
        >>> ks_2samp(a, a + 10)[0]
        1.0
    """
    x = a.detach().reshape(-1).double().cpu().sort().values
    y = b.detach().reshape(-1).double().cpu().sort().values
    n, m = x.numel(), y.numel()
    if n == 0 or m == 0:
        raise ValueError("ks_2samp needs two non-empty samples")
    grid = torch.cat([x, y])
    cdf_x = torch.searchsorted(x, grid, right=True).double() / n
    cdf_y = torch.searchsorted(y, grid, right=True).double() / m
    d = float((cdf_x - cdf_y).abs().max())
    en = math.sqrt(n * m / (n + m))
    return d, kolmogorov_sf(en * d)


@dataclass(frozen=True)
class TensorStealth:
    """KS test of one locked tensor against its original values.

    Attributes:
        name: tensor name.
        numel: values in the tensor.
        changed: values the key changes in it.
        ks_statistic: the KS distance ``D``.
        p_value: the KS p-value (small: the lock is visible in the distribution).
    """

    name: str
    numel: int
    changed: int
    ks_statistic: float
    p_value: float


@dataclass(frozen=True)
class ValueStealth:
    """Where one changed value sits in its locked tensor.

    Attributes:
        name: tensor name.
        index: flat index.
        original: the original value.
        locked: the locked value.
        z_score: ``(locked - mean) / std`` over the locked tensor.
        percentile: share of the tensor's values below the locked value, in [0, 100].
        extremeness: distance to the nearer end, ``min(percentile, 100 - percentile)``;
            small means at the tensor's extremes.
    """

    name: str
    index: int
    original: float
    locked: float
    z_score: float
    percentile: float
    extremeness: float


def tensor_stealth(original: nn.Module, locked: nn.Module, key: Key) -> list[TensorStealth]:
    """A KS test for every tensor the key touches."""
    a, b = original.state_dict(), locked.state_dict()
    return [
        TensorStealth(name, int(a[name].numel()), count, *ks_2samp(a[name], b[name]))
        for name, count in key.counts().items()
    ]


def value_stealth(locked: nn.Module, key: Key) -> list[ValueStealth]:
    """Rank and z-score of every changed value within its locked tensor."""
    state = locked.state_dict()
    out = []
    for e in key.changes(locked):
        t = state[e.name].detach().reshape(-1).double().cpu()
        # Exactly rounded sums, one thread: the same bits whatever torch's thread count.
        values = t.tolist()
        mean = math.fsum(values) / len(values)
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        sorted_t = t.sort().values
        for j, i in enumerate(e.indices.tolist()):
            v = float(t[i])
            below = int(torch.searchsorted(sorted_t, torch.tensor([v], dtype=torch.float64)).item())
            pct = 100.0 * below / t.numel()
            out.append(
                ValueStealth(
                    e.name,
                    int(i),
                    float(e.original[j]),
                    v,
                    (v - mean) / std if std > 0 else 0.0,
                    pct,
                    min(pct, 100.0 - pct),
                )
            )
    return out


def stealth_summary(original: nn.Module, locked: nn.Module, key: Key, *, alpha: float = 0.05) -> dict[str, Any]:
    """One JSON-ready summary of the stealth of a lock.

    Returns:
        ``min_p_value`` and ``tensors_rejected`` (KS p < ``alpha``) over the touched
        tensors, ``mean_abs_z`` and ``max_abs_z`` of the changed values, the share of
        changed values in their tensor's outer 1% (``share_extreme_1pct``), and the
        per-tensor and per-value rows.
    """
    tensors = tensor_stealth(original, locked, key)
    values = value_stealth(locked, key)
    abs_z = [abs(v.z_score) for v in values]
    return {
        "alpha": alpha,
        "tensors": len(tensors),
        "min_p_value": min((t.p_value for t in tensors), default=1.0),
        "tensors_rejected": sum(t.p_value < alpha for t in tensors),
        "mean_abs_z": sum(abs_z) / len(abs_z) if abs_z else 0.0,
        "max_abs_z": max(abs_z, default=0.0),
        "share_extreme_1pct": sum(v.extremeness < 1.0 for v in values) / len(values) if values else 0.0,
        "per_tensor": [asdict(t) for t in tensors],
        "per_value": [asdict(v) for v in values],
    }
