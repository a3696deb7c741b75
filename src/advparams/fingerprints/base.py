"""The fingerprint family's shared parts: the fingerprint, the interface, calibration.

A fingerprint proves ownership without changing the model: the owner extracts it from
their model once (:meth:`FingerprintScheme.extract`), keeps it secret, and later measures
how similar a suspect model is on the same probes (:meth:`FingerprintScheme.score`). The
threshold is set from the similarities of *null models* (independently trained models
that are not copies) at a stated false-positive rate
(:func:`advparams.verification.calibrate_scores`), never a constant.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

import torch
from torch import nn

from advparams.data.base import DataLike, ImageDataset
from advparams.devices import model_device, model_float_dtype
from advparams.errors import AdvParamsError, ConfigError
from advparams.metrics.accuracy import logits_of
from advparams.registry import Configurable, Registry
from advparams.verification import ScoreCalibration, Verification, calibrate_scores

C = TypeVar("C")

FINGERPRINTS: Registry[Any] = Registry("fingerprint")

MAX_PROBES = 100_000
"""The most probes a fingerprint may hold (also the file format's limit)."""
MAX_PROBE_SIDE = 1024
"""The largest height or width of a probe (no model of the toolkit takes more)."""
MAX_PROBE_VALUES = 2**24
"""The most values of all probes together (N x C x H x W: 64 MiB of float32), so that the
probes, their maps and the work of one pass over them stay bounded whatever the file says."""
MIN_FPR = 1e-12
"""The smallest false-positive rate a threshold is set for: below it the normal quantile
``1 - fpr`` is not computed reliably in double precision."""
MAX_FPR = 0.5
"""False-positive rates are below this (a higher one accuses most innocent models)."""
MAX_SEED = 2**63 - 1
"""Seeds are integers in ``[0, MAX_SEED]`` (what ``torch.Generator.manual_seed`` takes)."""


def check_probe_shape(shape: Sequence[int], *, what: str = "fingerprint probes") -> None:
    """Refuses probes of shape ``[N, C, H, W]`` outside the limits: ``1 <= N <=``
    :data:`MAX_PROBES`, sides in ``[1,`` :data:`MAX_PROBE_SIDE` ``]``, at least one channel
    and at most :data:`MAX_PROBE_VALUES` values in all.

    Raises:
        AdvParamsError: the shape says which limit it breaks.

    Example:
        >>> check_probe_shape((100, 1, 28, 28))
        >>> check_probe_shape((1, 1, 8150, 8150))
        Traceback (most recent call last):
        ...
        advparams.errors.AdvParamsError: fingerprint probes of shape [1, 1, 8150, 8150]: sides must be in [1, 1024]
    """
    shown = f"{what} of shape {list(shape)[:8]}"
    if len(shape) != 4:
        raise AdvParamsError(f"{shown}: probes are [N, C, H, W]")
    n, c, h, w = shape
    if not 1 <= n <= MAX_PROBES:
        raise AdvParamsError(f"{shown}: a fingerprint holds 1 to {MAX_PROBES} probes")
    if not (1 <= h <= MAX_PROBE_SIDE and 1 <= w <= MAX_PROBE_SIDE):
        raise AdvParamsError(f"{shown}: sides must be in [1, {MAX_PROBE_SIDE}]")
    if c < 1:
        raise AdvParamsError(f"{shown}: a probe has at least one channel")
    if math.prod(shape) > MAX_PROBE_VALUES:
        raise AdvParamsError(f"{shown}: {math.prod(shape)} values, over the limit of {MAX_PROBE_VALUES} in all")


def check_fpr(fpr: float, *, what: str = "fpr") -> float:
    """``fpr`` if it is a false-positive rate in ``[MIN_FPR, MAX_FPR)``.

    Example:
        >>> check_fpr(0.01)
        0.01
        >>> check_fpr(1e-300, what="--fpr")
        Traceback (most recent call last):
        ...
        advparams.errors.AdvParamsError: --fpr must be a false-positive rate in [1e-12, 0.5), got 1e-300
    """
    ok = isinstance(fpr, (int, float)) and not isinstance(fpr, bool) and MIN_FPR <= fpr < MAX_FPR
    if not ok:
        raise AdvParamsError(f"{what} must be a false-positive rate in [{MIN_FPR:g}, {MAX_FPR:g}), got {fpr!r}")
    return float(fpr)


def check_seed(seed: int, *, what: str = "seed") -> int:
    """``seed`` if it is an integer in ``[0, MAX_SEED]``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{what} must be an integer in [0, 2**63 - 1], got {str(seed)[:40]}")
    return seed


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
        if x.dtype != torch.float32:
            raise AdvParamsError(f"fingerprint probes must be float32, got {x.dtype}")
        check_probe_shape(tuple(x.shape))
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

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One probe's shape ``(C, H, W)``: what a model must take to be scored."""
        c, h, w = self.inputs.shape[1:]
        return int(c), int(h), int(w)

    def check_takes(self, input_shape: Sequence[int] | None, *, model: str = "the model") -> None:
        """Refuses a model that takes inputs of another shape than the probes, before any
        pass over them (``input_shape`` None: not known, nothing checked).

        Raises:
            AdvParamsError: the shapes differ (the message names both).
        """
        if input_shape is not None and tuple(input_shape) != self.input_shape:
            want = "x".join(map(str, input_shape))
            raise AdvParamsError(
                f"the fingerprint's probes are {'x'.join(map(str, self.input_shape))} inputs, but {model} takes "
                f"{want}: it cannot be scored against this fingerprint"
            )

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
    """``model``'s class scores for ``inputs`` (eval mode, no gradients; on CPU). The first
    input goes alone, so that a model that does not take this shape fails at the cost of
    one input, not of a batch.

    Raises:
        AdvParamsError: the model does not take inputs of this shape.
    """
    device, dtype = model_device(model), model_float_dtype(model)
    was = model.training
    model.eval()
    starts = [0, 1, *range(1 + batch_size, inputs.shape[0], batch_size)] if inputs.shape[0] > 1 else [0]
    ends = [*starts[1:], inputs.shape[0]]
    try:
        with torch.no_grad():
            return torch.cat(
                [
                    logits_of(model, inputs[a:b].to(device=device, dtype=dtype)).float().cpu()
                    for a, b in zip(starts, ends, strict=True)
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

    Attributes:
        probes_option: the configuration field that holds the number of probes (checked
            against the limits and the data before any work).
    """

    probes_option: ClassVar[str] = "probes"

    def extract(self, model: nn.Module, data: DataLike, *, generator: torch.Generator | None = None) -> Fingerprint:
        """The fingerprint of ``model`` on probes drawn from the owner's ``data``.

        Args:
            model: the owner's trained classifier; not changed.
            data: the owner's data (an :class:`ImageDataset`), where probes come from.
            generator: randomness; default: seeded from the configuration's ``seed``.
        """
        if not isinstance(data, ImageDataset):
            raise AdvParamsError(f"the {self.name} fingerprint needs an ImageDataset (images and their normalisation)")
        n = int(getattr(self.config, self.probes_option))
        try:
            check_probe_shape((n, *data.input_shape), what=f"probes of {data.name}'s images")
        except AdvParamsError as exc:
            raise ConfigError(f"{self.name} option {self.probes_option}={n} is too many: {exc}") from None
        self._check_data(data)
        gen = (
            generator if generator is not None else torch.Generator().manual_seed(int(getattr(self.config, "seed", 0)))
        )
        return self._extract(model, data, gen)

    def _check_data(self, data: ImageDataset) -> None:
        """Refuses options the data cannot satisfy (more probes than images, ...), before
        any work; nothing by default."""

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


def calibrate_on(null_models: Iterable[nn.Module], fingerprint: Fingerprint, fpr: float = 0.01) -> ScoreCalibration:
    """:func:`~advparams.verification.calibrate_scores` on the scores of ``null_models``
    (an iterable: a generator that loads one model at a time keeps one in memory).

    Raises:
        AdvParamsError: ``fpr`` is outside ``[MIN_FPR, MAX_FPR)`` (checked first).
    """
    check_fpr(fpr)
    return calibrate_scores([similarity(m, fingerprint) for m in null_models], fpr)


__all__ = [
    "FINGERPRINTS",
    "MAX_FPR",
    "MAX_PROBES",
    "MAX_PROBE_SIDE",
    "MAX_PROBE_VALUES",
    "MAX_SEED",
    "MIN_FPR",
    "Fingerprint",
    "FingerprintScheme",
    "aggregate",
    "box_of",
    "calibrate_on",
    "check_fpr",
    "check_probe_shape",
    "check_seed",
    "scheme_of",
    "scores_of",
    "similarity",
    "verify",
]
