"""The fingerprint family's shared parts: the fingerprint, the interface, calibration.

A fingerprint proves ownership without changing the model: the owner extracts it from
their model once (:meth:`FingerprintScheme.extract`), keeps it secret, and later measures
how similar a suspect model is on the same probes (:meth:`FingerprintScheme.score`). The
threshold is set from the similarities of *null models* (independently trained models
that are not copies) at a stated false-positive rate
(:func:`advparams.verification.calibrate_scores`), never a constant.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from advparams.data.base import DataLike, ImageDataset
from advparams.devices import model_device, model_float_dtype
from advparams.errors import AdvParamsError
from advparams.metrics.accuracy import logits_of
from advparams.registry import Configurable, Registry
from advparams.verification import ScoreCalibration, Verification, calibrate_scores

C = TypeVar("C")

FINGERPRINTS: Registry[Any] = Registry("fingerprint")

MAX_PROBES = 100_000
"""The most probes a fingerprint may hold (also the file format's limit)."""


@dataclass(frozen=True)
class Fingerprint:
    """The owner's secret: probe inputs and what the owner's model made of them.

    Attributes:
        scheme: the fingerprint's registry name.
        inputs: the probes as model inputs (normalised), float32 ``[N, C, H, W]``
            (IPGuard's points are not images, so they are not kept as uint8).
        labels: the owner model's label for each probe, int64 ``[N]``.
        maps: the owner model's fingerprint images, float32 ``[N, 1, H, W]`` (InFIP), or
            None.
        mean: per-channel mean of the [0, 1]-scaled images (the model's normalisation).
        std: per-channel standard deviation, likewise.
        num_classes: outputs of the owner's model.
        model_fingerprint: digest of the owner's model (facts, not a check: a stolen
            copy is expected to differ).
        config: the scheme's resolved configuration.
    """

    scheme: str
    inputs: torch.Tensor
    labels: torch.Tensor
    maps: torch.Tensor | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    model_fingerprint: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x, y = self.inputs, self.labels
        if x.dtype != torch.float32 or x.dim() != 4 or x.shape[0] < 1 or x.shape[0] > MAX_PROBES:
            raise AdvParamsError(f"fingerprint probes must be float32 [N, C, H, W] with 1 <= N <= {MAX_PROBES}")
        if not bool(torch.isfinite(x).all()):
            raise AdvParamsError("fingerprint probes must be finite")
        if y.dtype != torch.int64 or y.shape != (x.shape[0],):
            raise AdvParamsError("a fingerprint needs one int64 label per probe")
        if int(y.min()) < 0 or int(y.max()) >= self.num_classes:
            raise AdvParamsError(f"fingerprint labels must lie in [0, {self.num_classes})")
        if self.maps is not None:
            m = self.maps
            if m.dtype != torch.float32 or m.shape != (x.shape[0], 1, *x.shape[2:]):
                raise AdvParamsError(
                    f"fingerprint images must be float32 [N, 1, H, W] of the probes' size, got {tuple(m.shape)}"
                )
            if not bool(torch.isfinite(m).all()) or float(m.min()) < -1e-5 or float(m.max()) > 1.0 + 1e-5:
                raise AdvParamsError("fingerprint images must be finite values in [0, 1]")
        if len(self.mean) != x.shape[1] or len(self.std) != x.shape[1] or min(self.std) <= 0:
            raise AdvParamsError("a fingerprint needs one mean and one positive std per input channel")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def box(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The lowest and highest model input (pixels 0 and 255), ``[1, C, 1, 1]`` each."""
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (0.0 - mean) / std, (1.0 - mean) / std


def box_of(data: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The lowest and highest normalised input of ``data``'s images, ``[1, C, 1, 1]`` each."""
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return (0.0 - mean) / std, (1.0 - mean) / std


def scores_of(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """``model``'s class scores for ``inputs`` (eval mode, no gradients; on CPU).

    Raises:
        AdvParamsError: the model does not take inputs of this shape.
    """
    device, dtype = model_device(model), model_float_dtype(model)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat(
                [
                    logits_of(model, inputs[i : i + batch_size].to(device=device, dtype=dtype)).float().cpu()
                    for i in range(0, inputs.shape[0], batch_size)
                ]
            )
    except RuntimeError as exc:
        raise AdvParamsError(
            f"the model does not take the fingerprint's {tuple(inputs.shape[1:])} inputs ({exc})"
        ) from None
    finally:
        model.train(was)


def aggregate(values: torch.Tensor, how: Literal["mean", "median"]) -> float:
    """The per-probe similarities ``values`` as one score."""
    if how == "median":
        return float(values.double().median())
    return float(values.double().mean())


class FingerprintScheme(Configurable[C], ABC):
    """Base class of fingerprints; the constructor takes the configuration only.

    :meth:`extract` reads a fingerprint off the owner's model (which is not changed);
    :meth:`similarities` measures a suspect probe by probe and :meth:`score` aggregates
    them; :meth:`verify` decides at a threshold calibrated on null models.
    """

    def extract(self, model: nn.Module, data: DataLike, *, generator: torch.Generator | None = None) -> Fingerprint:
        """The fingerprint of ``model`` on probes drawn from the owner's ``data``.

        Args:
            model: the owner's trained classifier; not changed.
            data: the owner's data (an :class:`ImageDataset`), where probes come from.
            generator: randomness; default: seeded from the configuration's ``seed``.
        """
        if not isinstance(data, ImageDataset):
            raise AdvParamsError(f"the {self.name} fingerprint needs an ImageDataset (images and their normalisation)")
        gen = (
            generator if generator is not None else torch.Generator().manual_seed(int(getattr(self.config, "seed", 0)))
        )
        return self._extract(model, data, gen)

    @abstractmethod
    def _extract(self, model: nn.Module, data: ImageDataset, generator: torch.Generator) -> Fingerprint:
        """The scheme itself (see :meth:`extract`)."""

    @abstractmethod
    def similarities(self, suspect: nn.Module, fingerprint: Fingerprint) -> torch.Tensor:
        """How closely ``suspect`` matches each probe, float64 ``[N]``."""

    @abstractmethod
    def score(self, suspect: nn.Module, fingerprint: Fingerprint) -> float:
        """The suspect's similarity to the fingerprint (higher: more likely a copy)."""

    def verify(self, suspect: nn.Module, fingerprint: Fingerprint, calibration: ScoreCalibration) -> Verification:
        """The suspect's similarity, decided at the calibrated threshold."""
        return calibration.verify(self.score(suspect, fingerprint))

    def _check(self, fingerprint: Fingerprint) -> None:
        if fingerprint.scheme != self.name:
            raise AdvParamsError(f"this is a {fingerprint.scheme!r} fingerprint, not a {self.name!r} one")


def scheme_of(fingerprint: Fingerprint) -> FingerprintScheme[Any]:
    """The scheme that made ``fingerprint``, with the configuration it was made with."""
    return FINGERPRINTS.build(fingerprint.scheme, dict(fingerprint.config))  # type: ignore[no-any-return]


def similarity(suspect: nn.Module, fingerprint: Fingerprint) -> float:
    """The score of ``suspect`` against ``fingerprint`` by the scheme that made it."""
    return scheme_of(fingerprint).score(suspect, fingerprint)


def verify(suspect: nn.Module, fingerprint: Fingerprint, calibration: ScoreCalibration) -> Verification:
    """The verification of ``suspect`` against ``fingerprint`` at ``calibration``'s threshold."""
    return scheme_of(fingerprint).verify(suspect, fingerprint, calibration)


def calibrate_on(null_models: Sequence[nn.Module], fingerprint: Fingerprint, fpr: float = 0.01) -> ScoreCalibration:
    """:func:`~advparams.verification.calibrate_scores` on the scores of ``null_models``."""
    return calibrate_scores([similarity(m, fingerprint) for m in null_models], fpr)


__all__ = [
    "FINGERPRINTS",
    "MAX_PROBES",
    "Fingerprint",
    "FingerprintScheme",
    "aggregate",
    "box_of",
    "calibrate_on",
    "scheme_of",
    "scores_of",
    "similarity",
    "verify",
]
