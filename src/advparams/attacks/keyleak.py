"""Partial key leakage: the attacker learns a share of the key's entries.

A key may leak in part (a careless user, a side channel, a collusion of holders of
partial keys). With a fraction of the entries known, the attacker writes their original
values back; the rest stay locked. How much accuracy that returns measures whether a
lock degrades gracefully or collapses once a few entries are out. This is the only
attack given the true key (``uses_key``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from advparams.attacks.base import ATTACKS, Attack, Attacked
from advparams.data.base import DataLike
from advparams.errors import AdvParamsError
from advparams.keys.key import Key, KeyEntry
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class KeyLeakConfig:
    """Settings of :class:`KeyLeak`.

    Attributes:
        fraction: share of the key's entries (scalar values) leaked, in [0, 1];
            ``round(fraction * entries)`` of them, drawn uniformly.
        seed: seeds which entries leak when no generator is passed.
    """

    fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {self.fraction}")


def leaked_entries(
    entries: Sequence[KeyEntry], fraction: float, generator: torch.Generator
) -> list[tuple[str, int, int]]:
    """The leaked changes: ``(tensor name, position in the entry, flat index)``."""
    flat = [(e.name, j, int(i)) for e in entries for j, i in enumerate(e.indices.tolist())]
    k = round(fraction * len(flat))
    order = torch.randperm(len(flat), generator=generator)[:k].tolist()
    return [flat[i] for i in sorted(order)]


@ATTACKS.register("key-leak")
class KeyLeak(Attack[KeyLeakConfig]):
    """Partial key leakage: a random share of the key's entries is restored."""

    name = "key-leak"
    Config = KeyLeakConfig
    uses_key = True
    uses_data = False

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Restores the leaked entries in a copy of ``model``."""
        assert key is not None  # run() refuses a key attack without the key
        changes = key.changes(model)  # shuffles spelled out: each moved value is one change
        leaked = leaked_entries(changes, self.config.fraction, generator)
        entries = {e.name: e for e in changes}
        out = copy.deepcopy(model)
        state = out.state_dict()
        with torch.no_grad():
            for name, j, index in leaked:
                if name not in state:
                    raise AdvParamsError(f"the key names tensor {name!r}, which the model does not have")
                t = state[name]
                t.view(-1)[index] = entries[name].original[j].to(device=t.device, dtype=t.dtype)
        info = {
            "leaked": len(leaked),
            "entries": key.num_changed,
            "leaked_positions": {n: sorted(i for m, _, i in leaked if m == n) for n in {m for m, _, _ in leaked}},
        }
        return Attacked(out, info=info)
