"""Attacks on leaked copies that only tracing has: colluders averaging their copies,
weight noise at the mark's scale, and the adaptive attacker who knows the scheme and
holds one copy and the locked model (``docs/tracing.md``). Fine-tuning and pruning are the
registered attacks of :mod:`advparams.attacks`.

The adaptive attacker (:func:`unmark_by_values`) compares his copy with the locked model
value by value: without dither, a hardened lock only moves the original's values, so a
value of his copy that the locked tensor does not hold is a marked one, and the locked
values his copy lacks are the originals under the marks; he puts back, for every such
value, the missing original nearest to it less or plus the mark's size (which he knows
from the scheme's documented strength). With a dithered lock (``dither=23``) the locked
tensors hold none of the original's values, so almost every value of his copy looks
marked: he finds nothing he can tell apart, and leaves such tensors alone.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import nn

from advparams.registry import Configurable, Registry, validated

C = TypeVar("C")


_VIEW = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


def average_copies(models: Sequence[nn.Module]) -> nn.Module:
    """The colluders' mix: every floating tensor the mean of the copies' (float64, then
    rounded to the dtype); the inputs are not changed."""
    if not models:
        raise ValueError("averaging needs at least one copy")
    out = copy.deepcopy(models[0])
    states = [m.state_dict() for m in models]
    mixed = {}
    for name, t in states[0].items():
        if t.is_floating_point():
            mixed[name] = (sum(s[name].double() for s in states) / len(states)).to(t.dtype)
        else:
            mixed[name] = t.clone()
    out.load_state_dict(mixed)
    return out


def weight_noise(model: nn.Module, scale: float, seed: int) -> nn.Module:
    """A copy with Gaussian noise of ``scale`` times each weight tensor's standard deviation
    added to every weight tensor (``dim >= 2``)."""
    out = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            if p.dim() >= 2:
                noise = torch.randn(p.shape, generator=g, dtype=torch.float64) * scale * float(p.double().std())
                p.copy_((p.double() + noise.to(p.device)).to(p.dtype))
    return out


@dataclass(frozen=True)
class Unmarked:
    """What :func:`unmark_by_values` did.

    Attributes:
        model: the attacker's model.
        found: values of his copy that the locked model does not hold, in the tensors he
            changed.
        changed: values he put back.
        skipped: tensors left alone because most of their values looked marked (a
            dithered lock).
    """

    model: nn.Module
    found: int
    changed: int
    skipped: int


def _bits(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().reshape(-1).contiguous().view(_VIEW[t.dtype]).numpy()


def unmark_by_values(copy_: nn.Module, locked: nn.Module, strength: float, *, give_up: float = 0.9) -> Unmarked:
    """The adaptive single-copy attacker (see the module docstring).

    Args:
        copy_: the attacker's unlocked copy.
        locked: the locked model every user received.
        strength: the scheme's mark size, as a share of each tensor's standard deviation.
        give_up: a tensor in which more than this share of values looks marked is left alone.
    """
    out = copy.deepcopy(copy_)
    state, lstate = out.state_dict(), locked.state_dict()
    found = changed = skipped = 0
    for name, t in state.items():
        if t.dtype not in _VIEW or name not in lstate or lstate[name].shape != t.shape:
            continue
        c_bits, l_bits = _bits(t), _bits(lstate[name])
        if np.array_equal(c_bits, l_bits):
            continue
        values, inverse, c_counts = np.unique(c_bits, return_inverse=True, return_counts=True)
        l_values, l_counts = np.unique(l_bits, return_counts=True)
        held = np.zeros(len(values), dtype=np.int64)
        at = np.searchsorted(l_values, values).clip(max=len(l_values) - 1)
        hit = l_values[at] == values
        held[hit] = l_counts[at[hit]]
        extra = (c_counts - held).clip(min=0)  # copies of each value beyond what the lock holds
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(c_counts)[:-1]])
        suspects = np.concatenate(
            [order[starts[k] + c_counts[k] - extra[k] : starts[k] + c_counts[k]] for k in np.nonzero(extra)[0]]
            or [np.empty(0, dtype=np.int64)]
        )
        if len(suspects) == 0:
            continue
        if len(suspects) > give_up * len(c_bits):
            skipped += 1
            continue
        found += len(suspects)
        c_at = np.searchsorted(values, l_values).clip(max=len(values) - 1)
        in_copy = np.where(values[c_at] == l_values, c_counts[c_at], 0)
        missing_bits = np.repeat(l_values, (l_counts - in_copy).clip(min=0))
        flat = t.detach().cpu().reshape(-1)
        missing = torch.from_numpy(missing_bits).view(t.dtype).double().numpy()
        missing.sort()
        if len(missing) == 0:
            continue
        x = flat.double().numpy()
        a = strength * float(lstate[name].double().std())
        repaired = x.copy()
        for i in suspects.tolist():
            best, gap = x[i], np.inf
            for guess in (x[i] - a, x[i] + a):
                k = int(np.searchsorted(missing, guess))
                for j in (k - 1, k):
                    if 0 <= j < len(missing) and abs(missing[j] - guess) < gap:
                        best, gap = missing[j], abs(missing[j] - guess)
            repaired[i] = best
        new = torch.from_numpy(repaired).to(t.dtype)
        changed += int((new != flat).sum())
        with torch.no_grad():
            t.copy_(new.view_as(t).to(t.device))
    return Unmarked(out, found, changed, skipped)


# ------------------------------------------------------------------ registered copy attacks


def copy_attacks() -> list[str]:
    """Every attack the tracing study can run on a leaked copy: the lock attacks that
    declare ``attacks_copies``, then :data:`COPY_ATTACKS`'s."""
    from advparams.attacks import ATTACKS

    return [n for n in ATTACKS.names() if getattr(ATTACKS.get(n), "attacks_copies", False)] + COPY_ATTACKS.names()


@dataclass(frozen=True)
class CopyContext:
    """What an attack on a leaked copy may hold besides the copy: the locked model every
    user has, the attacker's data, and the marks' documented strength."""

    locked: nn.Module
    data: Any
    strength: float


class CopyAttack(Configurable[C]):
    """Base of the attacks only tracing runs, on one user's unlocked copy (registered in
    :data:`COPY_ATTACKS`); the lock attacks of :mod:`advparams.attacks` that declare
    ``attacks_copies`` run there too."""

    def attack(self, copy_: nn.Module, context: CopyContext, seed: int) -> tuple[nn.Module, dict[str, Any]]:
        """The attacked copy and what the attack reports (counts only, never a value)."""
        raise NotImplementedError


COPY_ATTACKS: Registry[type[CopyAttack[Any]]] = Registry("tracing attack")
"""Attacks on leaked copies that only tracing runs, by name."""


@dataclass(frozen=True)
@validated
class NoiseConfig:
    """Attributes:
    scale: the noise's standard deviation as a multiple of the mark's strength scale, in (0, 10].
    """

    scale: float

    def __post_init__(self) -> None:
        if not 0 < self.scale <= 10:
            raise ValueError(f"noise takes one option, scale, in (0, 10], got {self.scale}")


@COPY_ATTACKS.register("noise")
class Noise(CopyAttack[NoiseConfig]):
    """Gaussian noise on every weight (:func:`weight_noise`)."""

    name = "noise"
    Config = NoiseConfig

    def attack(self, copy_: nn.Module, context: CopyContext, seed: int) -> tuple[nn.Module, dict[str, Any]]:
        return weight_noise(copy_, float(self.config.scale), seed), {}


RELOCK_SCHEMES = ("advparams", "hardened")
"""The schemes a user may lock his copy again with."""


@dataclass(frozen=True)
@validated
class RelockConfig:
    """Attributes:
    scheme: the scheme the user locks his copy with again (advparams or hardened; default hardened).
    samples: how many of his training images he locks with (the first ones).
    """

    scheme: Literal["advparams", "hardened"] = "hardened"
    samples: int = 2000

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")


@COPY_ATTACKS.register("relock")
class Relock(CopyAttack[RelockConfig]):
    """The user locks his copy again with a scheme of his own, on his first images."""

    name = "relock"
    Config = RelockConfig

    def attack(self, copy_: nn.Module, context: CopyContext, seed: int) -> tuple[nn.Module, dict[str, Any]]:
        from advparams.schemes import SCHEMES

        seeded = "seed" in {f.name for f in dataclasses.fields(SCHEMES.get(self.config.scheme).Config)}
        scheme = SCHEMES.build(self.config.scheme, {"seed": seed} if seeded else {})
        attacker = context.data.subset(torch.arange(min(self.config.samples, len(context.data))))
        result = scheme.lock(copy_, attacker)
        return result.model, {"relocked_values": result.key.num_changed}


@dataclass(frozen=True)
@validated
class AdaptiveConfig:
    """Attributes:
    give_up: a tensor in which more than this share of values looks marked is left alone, in (0, 1].
    """

    give_up: float = 0.9

    def __post_init__(self) -> None:
        if not 0 < self.give_up <= 1:
            raise ValueError(f"give_up must be in (0, 1], got {self.give_up}")


@COPY_ATTACKS.register("adaptive")
class Adaptive(CopyAttack[AdaptiveConfig]):
    """The attacker who knows the scheme, holds his copy and the locked model, and puts
    back the values he can tell are marked (:func:`unmark_by_values`)."""

    name = "adaptive"
    Config = AdaptiveConfig

    def attack(self, copy_: nn.Module, context: CopyContext, seed: int) -> tuple[nn.Module, dict[str, Any]]:
        u = unmark_by_values(copy_, context.locked, context.strength, give_up=self.config.give_up)
        return u.model, {"found": u.found, "changed": u.changed, "skipped": u.skipped}


__all__ = [
    "COPY_ATTACKS",
    "RELOCK_SCHEMES",
    "Adaptive",
    "CopyAttack",
    "CopyContext",
    "Noise",
    "Relock",
    "Unmarked",
    "average_copies",
    "copy_attacks",
    "unmark_by_values",
    "weight_noise",
]
