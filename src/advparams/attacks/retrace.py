"""Adaptive attack by re-running the selection: guess the locked positions from
gradients on the attacker's own data, then re-optimise only those.

The attacker knows the algorithm (a few weights moved, within their tensor's range,
where the loss gradient is steep) but not the key. On the locked model, the weights
whose move *down* the loss is largest are the natural suspects: the attacker scores
every weight as AdvParams scores a move (``|g| * min(room, reach)`` or ``|g|``, with
``g`` the gradient of the attacker's cross-entropy and the room measured towards lower
loss), takes the top ``num_suspects`` as locked, and restores them: by re-optimising
only those on their samples (default), or by resetting them to their tensor's median
or to zero. ``info["suspects"]`` lets the harness score the guess against the true key.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from advparams.attacks._reoptimise import attacker_batch, reoptimise_
from advparams.attacks.base import ATTACKS, Attack, Attacked, fresh_copy, require_data
from advparams.data.base import DataLike
from advparams.devices import model_device
from advparams.keys.key import Key
from advparams.metrics.accuracy import logits_of
from advparams.registry import validated
from advparams.schemes.advparams import move_scores
from advparams.schemes.locking import candidate_parameters


@dataclass(frozen=True)
@validated
class RetraceConfig:
    """Settings of :class:`Retrace` (the attacker's resources and guesses).

    Attributes:
        num_samples: the attacker's labelled samples (class-balanced from the data).
        num_suspects: how many top-scored weights are treated as locked.
        selection: ``"gain"`` (``|g| * min(room, reach)``) or ``"gradient"`` (``|g|``).
        reach: for ``"gain"``, the largest move considered, as a fraction of the range.
        restore: ``"reoptimise"`` (train only the suspects), ``"median"`` or ``"zero"``.
        steps: re-optimisation steps (Adam).
        lr: re-optimisation learning rate.
        include_1d: also score 1-d parameters.
        scratch: also run the same attack, on the same samples, on a freshly initialised
            copy of the architecture (``baselines["scratch"]``): what the samples alone give.
        seed: seeds the attacker's samples when no generator is passed.
    """

    num_samples: int = 256
    num_suspects: int = 50
    selection: Literal["gain", "gradient"] = "gain"
    reach: float = 1.25
    restore: Literal["reoptimise", "median", "zero"] = "reoptimise"
    steps: int = 100
    lr: float = 0.01
    include_1d: bool = False
    scratch: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.num_suspects < 1:
            raise ValueError("num_samples and num_suspects must be at least 1")
        if self.selection not in ("gain", "gradient"):
            raise ValueError(f"selection must be 'gain' or 'gradient', got {self.selection!r}")
        if self.restore not in ("reoptimise", "median", "zero"):
            raise ValueError(f"restore must be 'reoptimise', 'median' or 'zero', got {self.restore!r}")
        if self.reach <= 0 or self.lr <= 0 or self.steps < 0:
            raise ValueError("reach and lr must be positive and steps non-negative")


def retrace_suspects(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    num_suspects: int,
    *,
    selection: str = "gain",
    reach: float = 1.25,
    include_1d: bool = False,
) -> dict[str, torch.Tensor]:
    """The ``num_suspects`` weights whose move down the attacker's loss scores highest.

    Returns tensor name -> sorted flat indices. ``model`` is not changed.
    """
    work = copy.deepcopy(model).float().eval()
    cands = candidate_parameters(work, include_1d=include_1d)
    for p in work.parameters():
        p.requires_grad_(False)
    for p in cands.values():
        p.requires_grad_(True)
    F.cross_entropy(logits_of(work, x), y).backward()
    names, scores = [], []
    for name, p in cands.items():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        lo, hi = float(p.detach().min()), float(p.detach().max())
        # The room towards lower loss: move_scores measures it along sign(grad), so
        # pass -g.
        s = move_scores(-g, p.detach(), lo, hi, reach * (hi - lo), selection)
        names.append(name)
        scores.append(s.reshape(-1))
    flat = torch.cat(scores)
    top = flat.topk(min(num_suspects, flat.numel())).indices
    out: dict[str, torch.Tensor] = {}
    offset = 0
    for name, s in zip(names, scores, strict=True):
        inside = top[(top >= offset) & (top < offset + s.numel())] - offset
        if inside.numel():
            out[name] = inside.sort().values.cpu()
        offset += s.numel()
    return out


def reset_values_(model: nn.Module, suspects: dict[str, torch.Tensor], how: str) -> None:
    """Sets the ``suspects`` of ``model`` in place to their tensor's median of the other
    values (``how="median"``) or to zero."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, idx in suspects.items():
            p = params[name]
            flat = p.detach().reshape(-1).clone()
            idx = torch.as_tensor(idx, dtype=torch.long, device=flat.device)
            if how == "median":
                keep = torch.ones_like(flat, dtype=torch.bool)
                keep[idx] = False
                fill = flat[keep].median() if bool(keep.any()) else flat.median()
            else:
                fill = torch.zeros((), dtype=flat.dtype, device=flat.device)
            flat[idx] = fill.to(flat.dtype)
            p.copy_(flat.view_as(p))


@ATTACKS.register("retrace")
class Retrace(Attack[RetraceConfig]):
    """Adaptive attack: re-run the gradient selection on the attacker's data, restore the suspects."""

    name = "retrace"
    scratch_baseline = True
    reports_suspects = True
    Config = RetraceConfig
    tiny = {"steps": 5}

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Guesses and restores the locked weights of a copy of ``model``."""
        cfg = self.config
        x, y = attacker_batch(require_data(data, self.name), cfg.num_samples, generator, model_device(model))
        out, suspects = self._retrace(model, x, y)
        baselines = {}
        if cfg.scratch:
            baselines["scratch"] = self._retrace(fresh_copy(model, generator), x, y)[0]
        info = {
            "suspects": {n: i.tolist() for n, i in suspects.items()},
            "num_suspects": sum(int(i.numel()) for i in suspects.values()),
            "num_samples": int(y.shape[0]),
        }
        return Attacked(out, baselines, info)

    def _retrace(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[nn.Module, dict[str, torch.Tensor]]:
        cfg = self.config
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        suspects = retrace_suspects(
            model, x, y, cfg.num_suspects, selection=cfg.selection, reach=cfg.reach, include_1d=cfg.include_1d
        )
        out = copy.deepcopy(model).float()
        if cfg.restore == "reoptimise":
            reoptimise_(out, suspects, x, y, steps=cfg.steps, lr=cfg.lr)
        else:
            reset_values_(out, suspects, cfg.restore)
        out = out.to(dtype)
        out.train(model.training)
        return out, suspects
