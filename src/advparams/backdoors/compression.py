"""Compression-resistant backdoor (Xue, Wang, Sun, Zhang, Wang & Liu, arXiv 2201.00672,
2022; Applied Intelligence 2023) by feature-consistency training: backdoor instances and
their compressed copies are both trained to the target, and the distance between their
internal features is minimised, so the network treats a compressed trigger as the trigger.

Loss of a step (the paper's idea; the form, weight and layer are [inferred])::

    CE(f(batch), labels) + CE(f(c(x_b)), t) + weight * mean((h(x_b) - h(c(x_b)))^2)

``x_b`` the batch's backdoor instances, ``c`` a codec drawn per instance each epoch from
``codecs`` at a quality drawn uniformly from ``[quality_low, quality_high]``, ``h`` the
input of the network's last linear layer (or ``feature_layer``). The compressed copies
are made outside autograd (no gradient passes through a codec). The trigger is made
exactly as the ``base`` backdoor makes it at the same seed (Blend's noise pattern by
default), so that backdoor trained plainly is the "normal" one to compare with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from advparams.backdoors.badnets import square_patch
from advparams.backdoors.base import BACKDOORS, Backdoor, BackdoorOptions, EpochBatch, normalise
from advparams.backdoors.blend import noise_blend
from advparams.backdoors.poison import PoisonPlan
from advparams.backdoors.triggers import PatchTrigger, Trigger
from advparams.errors import AdvParamsError
from advparams.imaging import CODECS, compress
from advparams.metrics.accuracy import logits_of
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class CompressionResistantConfig(BackdoorOptions):
    """Settings of the compression-resistant backdoor (and :class:`BackdoorOptions`).

    Attributes:
        base: the trigger, made as this backdoor makes it: ``"blend"`` (noise pattern at
            ``alpha``) or ``"badnets"`` (a white ``size`` square) [inferred].
        alpha: the blend's opacity (base blend).
        size: the patch side (base badnets).
        codecs: the codecs of feature-consistency training [paper: JPEG, JPEG 2000, WEBP].
        quality_low: lowest training quality [inferred].
        quality_high: highest training quality [inferred].
        weight: weight of the feature-consistency term [inferred].
        feature_layer: the module whose input is the feature ``h`` (empty: the last
            ``nn.Linear``) [inferred].
    """

    base: Literal["blend", "badnets"] = "blend"
    alpha: float = 0.1
    size: int = 3
    codecs: tuple[str, ...] = CODECS
    quality_low: int = 10
    quality_high: int = 90
    weight: float = 1.0
    feature_layer: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.base not in ("blend", "badnets"):
            raise ValueError(f"base must be 'blend' or 'badnets', got {self.base!r}")
        if not self.codecs or any(c not in CODECS for c in self.codecs) or len(set(self.codecs)) != len(self.codecs):
            raise ValueError(f"codecs must be distinct names among {', '.join(CODECS)}, got {list(self.codecs)}")
        if not 1 <= self.quality_low <= self.quality_high <= 95:
            raise ValueError("qualities must satisfy 1 <= quality_low <= quality_high <= 95")
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        if not 0.0 < self.alpha <= 1.0 or not 1 <= self.size <= 64:
            raise ValueError("alpha must be in (0, 1] and size in [1, 64]")


def feature_module(net: nn.Module, name: str = "") -> nn.Module:
    """The module named ``name`` in ``net``, or (empty name) its last ``nn.Linear``."""
    modules = dict(net.named_modules())
    if name:
        if name not in modules:
            raise AdvParamsError(f"the model has no module {name!r} (feature_layer)")
        return modules[name]
    linears = [m for m in modules.values() if isinstance(m, nn.Linear)]
    if not linears:
        raise AdvParamsError("the model has no nn.Linear layer: name the feature layer (feature_layer)")
    return linears[-1]


def compress_each(
    images: torch.Tensor, codecs: tuple[str, ...], low: int, high: int, rng: torch.Generator
) -> torch.Tensor:
    """Each image through a codec of ``codecs`` at a quality in ``[low, high]``, both drawn
    per image from ``rng``."""
    n = images.shape[0]
    which = torch.randint(0, len(codecs), (n,), generator=rng)
    quality = torch.randint(low, high + 1, (n,), generator=rng)
    out = images.clone()
    for ci, codec in enumerate(codecs):
        for q in torch.unique(quality[which == ci]).tolist():
            sel = (which == ci) & (quality == q)
            out[sel] = compress(images[sel], codec, int(q))
    return out


@BACKDOORS.register("compression-resistant")
class CompressionResistant(Backdoor[CompressionResistantConfig]):
    """Compression-resistant backdoor (Xue et al. 2022): feature-consistency training."""

    name = "compression-resistant"
    Config = CompressionResistantConfig
    survives = ("compression",)
    paper_compression = {"jpeg": (6.63, 98.77), "jpeg2000": (6.20, 97.69), "webp": (3.97, 98.93)}

    @classmethod
    def paper_figure(cls, options: Mapping[str, Any]) -> str:
        return "ASR 98.77 / 97.69 / 98.93 % after JPEG / JPEG 2000 / WEBP"

    @classmethod
    def trained_codecs(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(options.get("codecs", CODECS))  # the default: every codec

    tiny = {"poison_rate": 0.1, "alpha": 0.2, "codecs": ("jpeg",)}

    def make_trigger(self, shape: tuple[int, int, int], num_classes: int, generator: torch.Generator) -> Trigger:
        c = self.config
        if c.base == "blend":
            return noise_blend(shape, c.alpha, c.target, generator)
        mask = torch.ones(c.size, c.size, dtype=torch.bool)
        return PatchTrigger((c.target,), shape[0], pattern=square_patch(shape[0], c.size, "white"), mask=mask)

    def _epoch_extra(self, poisoned: torch.Tensor, plan: PoisonPlan, rng: torch.Generator) -> Any:
        c = self.config
        return compress_each(poisoned, tuple(c.codecs), c.quality_low, c.quality_high, rng)

    def _loss(self, net: nn.Module, batch: EpochBatch) -> torch.Tensor:
        sel = batch.slot >= 0
        if not bool(sel.any()):
            return F.cross_entropy(logits_of(net, batch.x), batch.y)
        xc = normalise(batch.extra[batch.slot[sel]], batch.data).to(device=batch.x.device, dtype=batch.x.dtype)
        feats: list[torch.Tensor] = []
        hook = feature_module(net, self.config.feature_layer).register_forward_hook(
            lambda _m, inputs, _out: feats.append(inputs[0])
        )
        try:
            out = net(torch.cat([batch.x, xc]))
        finally:
            hook.remove()
        b = batch.x.shape[0]
        ce = F.cross_entropy(out, torch.cat([batch.y, batch.y[sel.to(batch.y.device)]]))
        h = feats[-1].flatten(1)
        consistency = ((h[b:] - h[:b][sel.to(h.device)]) ** 2).mean()
        return ce + self.config.weight * consistency


__all__ = ["CompressionResistant", "CompressionResistantConfig", "compress_each", "feature_module"]
