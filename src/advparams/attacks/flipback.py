"""Adaptive attack on sign-flip locks: flip signs back where that lowers the attacker's loss.

An attacker who knows a lock flips signs (``signflip``) but not which weights searches
for the flips that undo it: each step ranks all weights by the first-order loss change
of flipping them back, ``2 * g * w`` on the attacker's own samples, evaluates the top
``candidates`` exactly (one forward pass each), and flips the best one if it lowers the
loss; it stops after ``max_flips`` flips or when no candidate helps. The flipped
positions are reported as suspects, so the harness scores them against the true key.
Against other locks it is a sparse sign-search repair.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advparams.attacks._reoptimise import attacker_batch
from advparams.attacks.base import ATTACKS, Attack, Attacked, fresh_copy, require_data
from advparams.data.base import DataLike
from advparams.devices import model_device
from advparams.keys.key import Key
from advparams.metrics.accuracy import logits_of
from advparams.registry import validated
from advparams.schemes.locking import candidate_parameters


@dataclass(frozen=True)
@validated
class FlipBackConfig:
    """Settings of :class:`FlipBack`.

    Attributes:
        num_samples: the attacker's labelled samples (class-balanced).
        candidates: flips evaluated exactly per step (top first-order ones).
        max_flips: the most flips made.
        include_1d: also consider 1-d parameters.
        scratch: also run the same search, on the same samples, from a freshly initialised
            copy of the architecture (``baselines["scratch"]``): what the samples alone give.
        seed: seeds the attacker's samples when no generator is passed.
    """

    num_samples: int = 1000
    candidates: int = 20
    max_flips: int = 300
    include_1d: bool = False
    scratch: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.candidates < 1 or self.max_flips < 1:
            raise ValueError("num_samples, candidates and max_flips must be at least 1")


@ATTACKS.register("flip-back")
class FlipBack(Attack[FlipBackConfig]):
    """Adaptive attack: greedy exact-loss search for sign flips that undo a sign-flip lock."""

    name = "flip-back"
    scratch_baseline = True
    reports_suspects = True
    Config = FlipBackConfig
    tiny = {"max_flips": 5}

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Flips signs back in a copy of ``model`` while that lowers the attacker's loss."""
        cfg = self.config
        x, y = attacker_batch(require_data(data, self.name), cfg.num_samples, generator, model_device(model))
        out, flipped, steps = flip_back(model, x, y, cfg)
        baselines = {}
        if cfg.scratch:
            baselines["scratch"] = flip_back(fresh_copy(model, generator), x, y, cfg)[0]
        suspects = {n: sorted(v) for n, v in flipped.items() if v}
        info = {
            "suspects": suspects,
            "num_suspects": sum(len(v) for v in suspects.values()),
            "num_samples": int(y.shape[0]),
            "steps": steps,
        }
        return Attacked(out, baselines, info)


def flip_back(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: FlipBackConfig
) -> tuple[nn.Module, dict[str, set[int]], int]:
    """The greedy search of :class:`FlipBack` on a copy of ``model``: the result, the
    flipped positions per tensor and the number of flips made."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    work = copy.deepcopy(model).float().eval()
    for p in work.parameters():
        p.requires_grad_(False)
    cands = candidate_parameters(work, include_1d=cfg.include_1d)
    names = list(cands)
    sizes = [cands[n].numel() for n in names]
    flipped: dict[str, set[int]] = {n: set() for n in names}
    steps = 0
    while steps < cfg.max_flips:
        for p in cands.values():
            p.requires_grad_(True)
            p.grad = None
        loss = F.cross_entropy(logits_of(work, x), y)
        loss.backward()
        base = float(loss.detach())
        scores = torch.cat(
            [(2.0 * cands[n].grad * cands[n].detach()).reshape(-1) for n in names]  # type: ignore[operator]
        )
        for p in cands.values():
            p.requires_grad_(False)
            p.grad = None
        best: tuple[str, int] | None = None
        best_loss = base
        with torch.no_grad():
            for j in scores.topk(min(cfg.candidates, scores.numel())).indices.tolist():
                t, offset = 0, 0
                while j >= offset + sizes[t]:
                    offset += sizes[t]
                    t += 1
                name, i = names[t], j - offset
                flat = cands[name].data.view(-1)
                flat[i] = -flat[i]
                trial = float(F.cross_entropy(logits_of(work, x), y))
                flat[i] = -flat[i]
                if trial < best_loss:
                    best, best_loss = (name, i), trial
        if best is None:
            break
        cands[best[0]].data.view(-1)[best[1]] *= -1
        flipped[best[0]] ^= {best[1]}
        steps += 1
    out = work.to(dtype)
    for p, q in zip(out.parameters(), model.parameters(), strict=True):
        p.requires_grad_(q.requires_grad)
    out.train(model.training)
    return out, flipped, steps
