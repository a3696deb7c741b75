"""Tardos fingerprinting codes (G. Tardos, "Optimal probabilistic fingerprint codes",
STOC 2003 / J. ACM 2008) with the symmetric accusation score of Škorić, Katzenbeisser and
Celik ("Symmetric Tardos fingerprinting codes for arbitrary alphabet sizes", Designs,
Codes and Cryptography, 2008), as used for networks by DeepMarks (Chen et al., ICMR 2019).

Every position ``j`` of a code of length ``m`` has a secret bias ``p_j`` in
``[t, 1 - t]``, ``t = 1 / (300 c)`` for coalitions of up to ``c`` users, drawn with density
proportional to ``1 / sqrt(p (1 - p))``; user ``u``'s bit is 1 with probability ``p_j``.
The draws come from SHAKE-256 over the owner's secret, not from a library's generator, so
a codeword is the same under any future torch or Python version:

1. ``SHAKE-256(b"advparams-tardos-v1\\0" + secret + label)``, read as little-endian
   unsigned 64-bit words ``w``, gives uniforms ``((w >> 11) + 0.5) / 2**53``;
2. the biases use the label ``b"bias"``: ``p = sin(r)**2`` with
   ``r = r_t + u (pi/2 - 2 r_t)``, ``r_t = asin(sqrt(t))``;
3. user ``u``'s codeword uses ``b"user\\0" + u.encode("utf-8")``: bit ``j`` is ``u_j < p_j``.

A suspect shows an *observation* ``y_j`` in ``[-1, 1]`` per position: +1 where it carries
bit 1, -1 where it carries bit 0, 0 where the position was erased, anything between where
copies were mixed. User ``u``'s score is ``S_u = sum_j y_j U(x_uj, p_j)`` with
``U(1, p) = sqrt((1 - p) / p)`` and ``U(0, p) = -sqrt(p / (1 - p))``. For a user whose
codeword the suspect does not come from, ``U`` has mean 0 and variance 1 whatever ``y``
is, so ``S_u`` is a sum of independent mean-zero terms of known distribution: a
Chernoff bound on the chance that it passes a threshold (:func:`accusation_threshold`)
calibrates the decision for a stated probability of accusing an innocent user.

Example (the small case of ``tests/unit/tracing/test_code.py``, worked out by hand):
    >>> p = torch.tensor([0.5, 0.5, 0.2, 0.8], dtype=torch.float64)
    >>> alice = torch.tensor([1, 0, 1, 0], dtype=torch.bool)
    >>> bob = torch.tensor([0, 1, 1, 0], dtype=torch.bool)
    >>> y = (observation(alice) + observation(bob)) / 2  # their copies averaged
    >>> y.tolist()
    [0.0, 0.0, 1.0, -1.0]
    >>> scores(y, torch.stack([alice, bob]), p).tolist()
    [4.0, 4.0]
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from advparams.errors import ConfigError, UserTableError

__all__ = ["TardosCode", "accusation_threshold", "observation", "scores"]

_DOMAIN = b"advparams-tardos-v1\0"


def _uniforms(secret: bytes, label: bytes, n: int) -> torch.Tensor:
    """``n`` float64 uniforms in (0, 1) from SHAKE-256 over ``secret`` and ``label``."""
    stream = hashlib.shake_256(_DOMAIN + secret + label).digest(8 * n)
    words = np.frombuffer(stream, dtype="<u8") >> np.uint64(11)
    return torch.from_numpy((words.astype(np.float64) + 0.5) / 2.0**53)


def observation(bits: torch.Tensor) -> torch.Tensor:
    """The observation a single holder's copy shows: +1 for bit 1, -1 for bit 0."""
    return bits.to(torch.float64) * 2.0 - 1.0


def scores(observed: torch.Tensor, codewords: torch.Tensor, biases: torch.Tensor) -> torch.Tensor:
    """Symmetric Tardos scores ``S_u = sum_j y_j U(x_uj, p_j)``, one per codeword row."""
    p = biases.to(torch.float64)
    up, down = torch.sqrt((1.0 - p) / p), -torch.sqrt(p / (1.0 - p))
    u = torch.where(codewords.to(torch.bool), up, down)
    return u @ observed.to(torch.float64)


def accusation_threshold(observed: torch.Tensor, biases: torch.Tensor, users: int, rate: float) -> float:
    """The score above which a user is accused, so that the chance of accusing any of
    ``users`` innocent users is at most ``rate`` (a Chernoff bound with the union bound
    over users).

    An innocent user's terms ``X_j = y_j U_j`` are independent, with ``U_j`` equal to
    ``sqrt((1 - p_j) / p_j)`` with probability ``p_j`` and ``-sqrt(p_j / (1 - p_j))``
    otherwise, so their cumulant function ``K(l) = sum_j log E[exp(l X_j)]`` is exact,
    and ``P(S >= tau) <= exp(K(l) - l tau)`` for every ``l > 0``. The threshold is the
    least ``(K(l) + L) / l`` over a grid of ``l``, ``L = ln(users / rate)``: every point
    of the grid is a valid bound, so the grid only costs tightness.
    """
    if not 0.0 < rate < 1.0:
        raise ConfigError(f"the false-accusation rate must be in (0, 1), got {rate}")
    p = biases.to(torch.float64)
    y = observed.to(torch.float64)
    keep = y != 0
    if not bool(keep.any()):
        return 0.0
    p, y = p[keep], y[keep]
    up, down = torch.sqrt((1.0 - p) / p), -torch.sqrt(p / (1.0 - p))
    log_term = math.log(max(users, 1) / rate)
    spread = float((y.abs() * torch.maximum(up, -down)).max())
    grid = torch.logspace(-4, 1, 400, dtype=torch.float64) / max(spread, 1e-12)
    lam = grid[:, None]
    k = torch.logaddexp(torch.log(p) + lam * y * up, torch.log1p(-p) + lam * y * down).sum(1)
    return float(((k + log_term) / grid).min())


@dataclass(frozen=True)
class TardosCode:
    """A Tardos code of ``length`` positions for coalitions of up to ``colluders`` users,
    drawn from ``secret`` (see the module docstring).

    Example:
        >>> code = TardosCode(bytes(32), length=8)
        >>> torch.equal(code.codeword("alice"), code.codeword("alice"))
        True
        >>> bool(((code.biases() > 0) & (code.biases() < 1)).all())
        True
    """

    secret: bytes
    length: int
    colluders: int = 3

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ValueError("a Tardos code's secret needs at least 16 bytes")
        if self.length < 1:
            raise ConfigError(f"a code needs at least one position, got {self.length}")
        if self.colluders < 1:
            raise ConfigError(f"colluders must be at least 1, got {self.colluders}")

    @property
    def cutoff(self) -> float:
        """``t = 1 / (300 c)``: the biases lie in ``[t, 1 - t]``."""
        return 1.0 / (300.0 * self.colluders)

    def biases(self) -> torch.Tensor:
        """The secret per-position biases ``p_j`` (float64)."""
        rt = math.asin(math.sqrt(self.cutoff))
        r = rt + _uniforms(self.secret, b"bias", self.length) * (math.pi / 2.0 - 2.0 * rt)
        return torch.sin(r) ** 2

    def codeword(self, user: str) -> torch.Tensor:
        """User ``user``'s codeword (bool, ``length`` bits)."""
        if not user:
            raise UserTableError("a user id must not be empty")
        return _uniforms(self.secret, b"user\0" + user.encode("utf-8"), self.length) < self.biases()

    def codewords(self, users: Sequence[str]) -> torch.Tensor:
        """The codewords of ``users``, one row each."""
        p = self.biases()
        rows = [_uniforms(self.secret, b"user\0" + u.encode("utf-8"), self.length) < p for u in users]
        return torch.stack(rows) if rows else torch.zeros(0, self.length, dtype=torch.bool)
