"""What a backdoored model does: clean accuracy, ASR per sub-trigger, PSNR and SSIM of the
triggered images, and ASR after lossy codecs and physical transformations.

Every ASR is counted on test samples whose true class is not the sub-trigger's target
(:func:`advparams.metrics.backdoor.attack_success_rate`). Under a codec or a
transformation the *triggered* image is compressed or transformed, as it would be on its
way to the model; the rate at which transformed *clean* images are answered with the
target is measured too, so that a model that learnt "a blurred image is the target"
is not mistaken for a robust trigger.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from advparams.backdoors.base import normalise
from advparams.backdoors.triggers import Trigger
from advparams.data.base import ImageDataset
from advparams.errors import AdvParamsError
from advparams.imaging import (
    STRENGTH_LIMITS,
    check_codec,
    check_quality,
    check_strength,
    compress,
    random_physical,
    transform,
)
from advparams.metrics.accuracy import accuracy, predict
from advparams.metrics.backdoor import attack_success_rate, psnr, ssim

HELD_OUT_SEED = 7_000_000
"""Test-time transformations draw from ``HELD_OUT_SEED + seed``: never a training draw."""

COMBINED = "combined"
"""The transformation grid's name for every physical transformation at once, each up to
``strength`` times the given ranges (PTB's training ranges in the evaluation)."""


DEFAULT_TRANSFORMATIONS: dict[str, tuple[float, ...]] = {
    "rotation": (5.0, 10.0, 20.0, 30.0),
    "scale": (0.1, 0.2, 0.3),
    "perspective": (0.05, 0.1, 0.15),
    "blur": (0.5, 1.0, 1.5),
    "brightness-contrast": (0.2, 0.3, 0.4),
    "noise": (5.0, 10.0, 20.0),
    "colour-shift": (0.1, 0.2, 0.3),
    COMBINED: (1.0, 1.5, 2.0),
}
"""Held-out test conditions [inferred]: other random draws than training, and strengths
up to three times PTB's training ranges."""


def target_rate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, data: ImageDataset, target: int) -> float:
    """The ASR of ``model`` on uint8 ``images`` (normalised as ``data``)."""
    preds = predict(model, (normalise(images, data), labels))
    return attack_success_rate(preds, labels, target)


def _non_target(data: ImageDataset, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    keep = data.labels != target
    if not bool(keep.any()):
        raise AdvParamsError(f"the test data holds no sample outside target class {target}")
    return data.images[keep], data.labels[keep]


def _physical(
    images: torch.Tensor, kind: str, strength: float, ranges: Mapping[str, float], gen: torch.Generator
) -> torch.Tensor:
    if kind == COMBINED:
        return random_physical(images, {k: strength * v for k, v in ranges.items()}, generator=gen)
    return transform(images, kind, strength, generator=gen)


def _check_grid(
    data: ImageDataset,
    codecs: Sequence[str],
    qualities: Sequence[int],
    grid: Mapping[str, Sequence[float]],
    combined_ranges: Mapping[str, float] | None,
) -> None:
    """Every setting of the measurement, checked before any image is measured."""
    if len(data) == 0:
        raise AdvParamsError(f"{data.name} holds no test images to measure on")
    for c in codecs:
        check_codec(c)
    for q in qualities:
        check_quality(q)
    for kind, strengths in grid.items():
        for s in strengths:
            if kind != COMBINED:
                check_strength(kind, s)
            elif isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < 0:
                raise AdvParamsError(f"{COMBINED} strength must be a finite number >= 0, got {s!r}")
    if COMBINED in grid:
        if not combined_ranges:
            raise AdvParamsError("the combined transformation needs the ranges it scales")
        most = max(grid[COMBINED], default=0.0)
        for kind, top in combined_ranges.items():
            check_strength(kind, top)
            if top * most > STRENGTH_LIMITS[kind]:  # the combined strength scales every range
                raise AdvParamsError(
                    f"{COMBINED} strength {most:g} scales the {kind} range {top:g} to {top * most:g}, above its "
                    f"limit {STRENGTH_LIMITS[kind]:g}"
                )


def measure_backdoor(
    model: nn.Module,
    trigger: Trigger,
    data: ImageDataset,
    *,
    reference: nn.Module | None = None,
    codecs: Sequence[str] = (),
    qualities: Sequence[int] = (),
    transformations: Mapping[str, Sequence[float]] | None = None,
    combined_ranges: Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Measures ``model`` with ``trigger`` on ``data`` (a test set); JSON-ready.

    Args:
        model: the backdoored model.
        trigger: its trigger.
        data: clean test images.
        reference: a model without the backdoor (its answers to triggered images are
            reported as ``reference_asr``).
        codecs: codecs of the compression grid (with ``qualities``).
        qualities: qualities of the compression grid.
        transformations: transformation name (or ``"combined"``) -> strengths.
        combined_ranges: the ranges ``"combined"`` scales (all transformations at once).
        seed: the test-time transformations draw from ``HELD_OUT_SEED + seed``.

    Raises:
        AdvParamsError: no test image, an unknown codec or transformation, a quality or a
            strength out of range (all checked before anything is measured), or a target
            class that holds every test image.

    Returns:
        ``clean_accuracy``, per sub-trigger lists ``asr``, ``counted``, ``psnr``, ``ssim``
        (and ``reference_asr``), and where asked ``compression[codec][quality]`` and
        ``physical[kind][strength]`` (lists of per-trigger ASRs) with
        ``physical_clean[kind][strength]`` (per-trigger target rate of transformed clean images).
    """
    grid = dict(transformations or {})
    _check_grid(data, codecs, qualities, grid, combined_ranges)
    out: dict[str, Any] = {"clean_accuracy": accuracy(model, data)}
    asr, counted, psnrs, ssims, ref = [], [], [], [], []
    comp: dict[str, dict[str, list[float]]] = {c: {str(q): [] for q in qualities} for c in codecs}
    phys: dict[str, dict[str, list[float]]] = {k: {str(s): [] for s in v} for k, v in grid.items()}
    phys_clean: dict[str, dict[str, list[float]]] = {k: {str(s): [] for s in v} for k, v in grid.items()}
    for i, target in enumerate(trigger.targets):
        clean_x, labels = _non_target(data, target)
        x = trigger.apply(clean_x, i)
        asr.append(target_rate(model, x, labels, data, target))
        counted.append(int(labels.numel()))
        psnrs.append(psnr(x.float(), clean_x.float()))
        ssims.append(ssim(x.float(), clean_x.float()) if min(x.shape[-2:]) >= 11 else None)
        if reference is not None:
            ref.append(target_rate(reference, x, labels, data, target))
        for c in codecs:
            for q in qualities:
                comp[c][str(q)].append(target_rate(model, compress(x, c, q), labels, data, target))
        for kind, strengths in grid.items():
            for s in strengths:
                gen = torch.Generator().manual_seed(HELD_OUT_SEED + seed)
                phys[kind][str(s)].append(
                    target_rate(model, _physical(x, kind, s, combined_ranges or {}, gen), labels, data, target)
                )
                gen = torch.Generator().manual_seed(HELD_OUT_SEED + seed)
                phys_clean[kind][str(s)].append(
                    target_rate(model, _physical(clean_x, kind, s, combined_ranges or {}, gen), labels, data, target)
                )
    out.update(asr=asr, asr_mean=sum(asr) / len(asr), counted=counted, psnr=psnrs, ssim=ssims)
    if reference is not None:
        out["reference_asr"] = ref
    if codecs and qualities:
        out["compression"] = comp
    if grid:
        out["physical"] = phys
        out["physical_clean"] = phys_clean
    return out


__all__ = ["COMBINED", "DEFAULT_TRANSFORMATIONS", "HELD_OUT_SEED", "measure_backdoor", "target_rate"]
