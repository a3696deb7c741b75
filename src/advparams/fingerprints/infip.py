"""InFIP: interpretable fingerprints from Deep Taylor Decomposition maps (Xue et al., arXiv 2210.07481, 2022).

The owner's model is explained on a secret set of probe images with DTD
(:func:`~advparams.fingerprints.relevance.dtd_relevance`: z+ in hidden layers, z^B at the
input, BatchNorm merged); the maps, as fingerprint images, are the fingerprint. A suspect
is explained on the same probes for the same classes, and its maps are compared with the
owner's by SSIM; the mean SSIM is its score. The model is never changed.

Only the abstract was readable: the number of probes, how they are chosen, which class
is explained for the suspect, how a map becomes an image and how SSIMs are aggregated
are options, each labelled [inferred] below and in ``docs/fingerprints.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from advparams.data.base import ImageDataset
from advparams.devices import model_device, model_float_dtype
from advparams.errors import AdvParamsError, ConfigError
from advparams.fingerprint import model_fingerprint
from advparams.fingerprints.base import (
    FINGERPRINTS,
    MAX_PROBES,
    Fingerprint,
    FingerprintScheme,
    aggregate,
    box_of,
    check_seed,
    scores_of,
)
from advparams.fingerprints.relevance import dtd_relevance, fingerprint_images
from advparams.metrics.backdoor import ssim_images
from advparams.registry import validated

MAX_POOL = 10**7
"""The most candidates of ``"boundary"`` selection (it is also refused above the data's images)."""


@dataclass(frozen=True)
@validated
class InFIPConfig:
    """Settings of :class:`InFIP`.

    Attributes:
        probes: probe images in the fingerprint [inferred].
        selection: ``"random"`` (drawn uniformly from the owner's data) or ``"boundary"``
            (the ``probes`` of a random pool of ``pool`` images on which the owner's model
            has the smallest margin between its two top classes) [inferred].
        pool: candidates for ``"boundary"`` selection.
        explain: the class explained in the suspect: ``"owner"`` (the class the owner's
            model gave the probe) or ``"suspect"`` (the suspect's own answer) [inferred].
        aggregation: ``"mean"`` or ``"median"`` of the per-probe SSIMs [inferred].
        sigma: SSIM's Gaussian window (scikit-image's default 1.5: 11x11 pixels).
        batch_size: probes explained at once.
        seed: seeds the choice of probes.
    """

    probes: int = 100
    selection: Literal["random", "boundary"] = "random"
    pool: int = 1000
    explain: Literal["owner", "suspect"] = "owner"
    aggregation: Literal["mean", "median"] = "mean"
    sigma: float = 1.5
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.probes <= MAX_PROBES or self.batch_size < 1:
            raise ValueError(f"probes must be in [1, {MAX_PROBES}] and batch_size at least 1")
        if not self.probes <= self.pool <= MAX_POOL:
            raise ValueError(f"pool must be in [probes, {MAX_POOL}], got {self.pool}")
        if not 0.1 <= self.sigma <= 10.0:
            raise ValueError(f"sigma must be in [0.1, 10], got {self.sigma}")
        check_seed(self.seed)


def relevance_images(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    *,
    batch_size: int = 64,
) -> torch.Tensor:
    """The fingerprint images ``[N, 1, H, W]`` of ``model`` on ``inputs`` for ``labels`` (on CPU)."""
    device, dtype = model_device(model), model_float_dtype(model)
    out = []
    for i in range(0, inputs.shape[0], batch_size):
        x = inputs[i : i + batch_size].to(device=device, dtype=dtype)
        r = dtd_relevance(model, x, labels[i : i + batch_size], low=low.to(device, dtype), high=high.to(device, dtype))
        out.append(fingerprint_images(r).float().cpu())
    return torch.cat(out)


@FINGERPRINTS.register("infip")
class InFIP(FingerprintScheme[InFIPConfig]):
    """InFIP (Xue et al. 2022): DTD relevance maps of secret probes, compared by SSIM."""

    name = "infip"
    Config = InFIPConfig
    tiny = {"probes": 8, "pool": 16, "sigma": 0.5}

    def _check_data(self, data: ImageDataset) -> None:
        """The probes are distinct images of ``data``: refuses more probes (or, for
        ``"boundary"`` selection, a larger pool) than it holds, rather than record a number
        that was not used."""
        cfg = self.config
        if cfg.probes > len(data):
            raise ConfigError(
                f"infip option probes={cfg.probes} is more than the {len(data)} images of {data.name}: "
                f"choose at most {len(data)}"
            )
        if cfg.selection == "boundary" and cfg.pool > len(data):
            raise ConfigError(
                f"infip option pool={cfg.pool} is more than the {len(data)} images of {data.name}: "
                f"choose a pool of {cfg.probes} to {len(data)} images"
            )

    def _extract(self, model: nn.Module, data: ImageDataset, generator: torch.Generator) -> Fingerprint:
        cfg = self.config
        n = cfg.probes
        order = torch.randperm(len(data), generator=generator)
        if cfg.selection == "boundary":
            x_pool, _ = data.tensors(order[: cfg.pool])
            top2 = scores_of(model, x_pool, batch_size=cfg.batch_size).topk(2, dim=1).values
            pick = (top2[:, 0] - top2[:, 1]).argsort()[:n]
            inputs = x_pool[pick].float().contiguous()
        else:  # the first ``probes`` of the same draw: only they are loaded
            inputs = data.tensors(order[:n])[0].float().contiguous()
        labels = scores_of(model, inputs, batch_size=cfg.batch_size).argmax(1)
        low, high = box_of(data)
        maps = relevance_images(model, inputs, labels, low, high, batch_size=cfg.batch_size)
        return Fingerprint(
            scheme=self.name,
            inputs=inputs,
            labels=labels.long(),
            maps=maps,
            mean=data.mean,
            std=data.std,
            num_classes=int(scores_of(model, inputs[:1]).shape[1]),
            model_fingerprint=model_fingerprint(model),
            config=asdict(cfg),
        )

    def similarities(self, suspect: nn.Module, fingerprint: Fingerprint) -> torch.Tensor:
        """The SSIM of the suspect's fingerprint image of each probe against the owner's."""
        self._check(fingerprint)
        cfg = self.config
        if fingerprint.maps is None:
            raise AdvParamsError("this InFIP fingerprint holds no fingerprint images")
        if cfg.explain == "suspect":
            labels = scores_of(suspect, fingerprint.inputs, batch_size=cfg.batch_size).argmax(1)
        else:
            labels = fingerprint.labels
        scores = scores_of(suspect, fingerprint.inputs[:1])
        if int(labels.max()) >= scores.shape[1]:
            raise AdvParamsError(
                f"the suspect has {scores.shape[1]} outputs; the fingerprint explains class {int(labels.max())}"
            )
        low, high = fingerprint.box()
        maps = relevance_images(suspect, fingerprint.inputs, labels, low, high, batch_size=cfg.batch_size)
        return ssim_images(maps, fingerprint.maps, data_range=1.0, sigma=cfg.sigma)

    def score(self, suspect: nn.Module, fingerprint: Fingerprint) -> float:
        """The aggregated SSIM (``aggregation``) of the suspect's maps against the owner's."""
        return aggregate(self.similarities(suspect, fingerprint), self.config.aggregation)


__all__ = ["InFIP", "InFIPConfig", "relevance_images"]
