"""The watermark family's shared parts: the verification result and threshold calibration.

A watermark is verified by querying the suspect model with the key samples and counting
how many it answers with the watermark label (``score`` = that share). An unrelated model
also matches some key samples by chance, so the decision threshold is set from *null
models* (independently trained models that never saw the watermark): their match rate
``p0`` gives the chance a null model reaches ``k`` of ``n`` matches, a binomial tail, and
the threshold is the smallest share whose tail is at most the stated false-positive rate
(and above every null model actually observed).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from advparams.data.base import DataLike, ImageDataset, iter_batches
from advparams.devices import model_device, model_float_dtype
from advparams.errors import AdvParamsError
from advparams.metrics.accuracy import logits_of, predict
from advparams.metrics.binomial import binomial_tail
from advparams.registry import Configurable, Registry, validated
from advparams.verification import Verification

C = TypeVar("C")


@dataclass(frozen=True)
class Calibration:
    """A decision threshold set from null models.

    Attributes:
        threshold: the share of key samples at or above which the watermark is present.
        null_rate: the null models' pooled match rate ``p0`` (with a +1/+2 prior, so never 0).
        fpr: the false-positive rate the threshold was set for.
        num_queries: key samples per verification.
        null_scores: the null models' observed scores.
    """

    threshold: float
    null_rate: float
    fpr: float
    num_queries: int
    null_scores: tuple[float, ...]

    def verify(self, matches: int) -> Verification:
        """The verification of a model that answered ``matches`` of the key samples."""
        if not 0 <= matches <= self.num_queries:
            raise AdvParamsError(f"matches must be in [0, {self.num_queries}], got {matches}")
        score = matches / self.num_queries
        p_value = binomial_tail(matches, self.num_queries, self.null_rate)
        return Verification(score, self.threshold, p_value, score >= self.threshold)


def calibrate(null_scores: Sequence[float], num_queries: int, fpr: float = 1e-6) -> Calibration:
    """The threshold for ``num_queries`` key samples at false-positive rate ``fpr``.

    ``null_scores`` are the shares that null models matched. Their pooled rate (with a
    +1 match / +2 queries prior, so that a perfectly clean null set does not give a zero
    rate) is the null match rate ``p0``; the threshold is the smallest ``k / n`` with
    ``P(Binomial(n, p0) >= k) <= fpr`` that is also above the largest null score.

    Example:
        >>> c = calibrate([0.0, 0.02, 0.01, 0.0, 0.01], num_queries=100, fpr=1e-6)
        >>> 0.02 < c.threshold < 0.2, c.verify(100).decision, c.verify(3).decision
        (True, True, False)
    """
    if num_queries < 1:
        raise AdvParamsError(f"num_queries must be at least 1, got {num_queries}")
    if not null_scores:
        raise AdvParamsError("calibration needs the scores of at least one null model")
    if not 0.0 < fpr < 1.0:
        raise AdvParamsError(f"fpr must be in (0, 1), got {fpr}")
    if any(not 0.0 <= s <= 1.0 for s in null_scores):
        raise AdvParamsError("null scores are shares in [0, 1]")
    matches = sum(round(s * num_queries) for s in null_scores)
    p0 = (matches + 1) / (len(null_scores) * num_queries + 2)
    floor = max(round(s * num_queries) for s in null_scores) + 1
    for k in range(floor, num_queries + 1):
        if binomial_tail(k, num_queries, p0) <= fpr:
            return Calibration(k / num_queries, p0, fpr, num_queries, tuple(float(s) for s in null_scores))
    raise AdvParamsError(
        f"no threshold reaches a false-positive rate of {fpr:g} with {num_queries} key samples "
        f"(null match rate {p0:.3f}): use more key samples"
    )


# -- the watermark family --------------------------------------------------------------

WATERMARKS: Registry[Any] = Registry("watermark")


@dataclass(frozen=True)
class WatermarkKey:
    """The owner's secret: the key samples and the answers a watermarked model gives them.

    Images are kept as uint8 ``[N, C, H, W]`` (so LSB fingerprints and image codecs act
    on them exactly) and normalised with ``mean``/``std`` when queried.

    Attributes:
        scheme: the watermark's registry name.
        images: the key images.
        labels: the label the watermarked model answers for each key image.
        mean: per-channel mean of the [0, 1]-scaled images (the model's normalisation).
        std: per-channel standard deviation, likewise.
        num_classes: outputs of the watermarked model.
        model_fingerprint: fingerprint of the watermarked model (facts, not a check: a
            stolen model is expected to differ).
        config: the watermark's resolved configuration.
        user: the user whose fingerprint the images carry (``""``: none).
    """

    scheme: str
    images: torch.Tensor
    labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    model_fingerprint: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    user: str = ""

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise AdvParamsError(f"key images must be uint8 [N, C, H, W], got {self.images.dtype}")
        if self.labels.dim() != 1 or self.labels.shape[0] != self.images.shape[0] or self.labels.numel() == 0:
            raise AdvParamsError("a watermark key needs one label per key image and at least one image")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def inputs(self, images: torch.Tensor | None = None) -> torch.Tensor:
        """The (given or own) key images, normalised as the model expects."""
        x = self.images if images is None else images
        shape = (1, -1, 1, 1)
        return (x.float() / 255.0 - torch.tensor(self.mean).view(shape)) / torch.tensor(self.std).view(shape)

    def matches(self, model: nn.Module) -> int:
        """How many key images ``model`` answers with the watermark label.

        Raises:
            AdvParamsError: the model does not take images of the key's shape.
        """
        try:
            preds = predict(model, (self.inputs(), self.labels))
        except RuntimeError as exc:
            shape = tuple(self.images.shape[1:])
            raise AdvParamsError(f"the model does not take this key's {shape} images ({exc})") from None
        return int((preds == self.labels).sum())

    def score(self, model: nn.Module) -> float:
        """The share of key images answered with the watermark label (watermark accuracy)."""
        return self.matches(model) / len(self)

    def with_images(self, images: torch.Tensor, user: str) -> WatermarkKey:
        """The same key carrying other images (e.g. a user's fingerprinted copies)."""
        return dataclasses.replace(self, images=images, user=user)


@dataclass
class Watermarked:
    """What :meth:`Watermark.embed` returns.

    Attributes:
        model: the watermarked copy (the input model is not changed).
        key: the owner's key samples.
        info: JSON-ready facts (epochs, key size, target label, seconds, ...).
    """

    model: nn.Module
    key: WatermarkKey
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
@validated
class EmbedConfig:
    """How a watermark is trained into a model: fine-tuning on the clean data with the
    key samples mixed into every batch (shared by every scheme of the family).

    Attributes:
        epochs: passes over the clean data.
        lr: Adam learning rate.
        batch_size: clean samples per step.
        key_per_batch: key samples added to every step.
    """

    epochs: int = 2
    lr: float = 5e-4
    batch_size: int = 128
    key_per_batch: int = 16

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.key_per_batch < 1:
            raise ValueError("epochs, batch_size and key_per_batch must be at least 1")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


StepProgress = Callable[[int, int], None] | None
"""``progress(step, steps)``, called after every training step (None: no calls)."""


def train_with_key(
    model: nn.Module,
    data: DataLike,
    key_x: torch.Tensor,
    key_y: torch.Tensor,
    cfg: EmbedConfig,
    generator: torch.Generator,
    progress: StepProgress = None,
) -> nn.Module:
    """A copy of ``model`` fine-tuned on ``data`` with ``key_per_batch`` key samples
    (cycled in a random order) appended to every batch; ``model`` is not changed.
    ``progress(step, steps)`` is called after every batch."""
    import torch.nn.functional as F

    net = copy.deepcopy(model)
    device, dtype = model_device(net), model_float_dtype(net)
    for p in net.parameters():
        if p.is_floating_point():
            p.requires_grad_(True)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    order = torch.randperm(len(key_y), generator=generator)
    cursor = 0
    steps, step = cfg.epochs * -(-len(data) // cfg.batch_size), 0  # type: ignore[arg-type]
    for _ in range(cfg.epochs):
        net.train()
        for x, y in iter_batches(data, cfg.batch_size, shuffle=True, generator=generator):
            take = torch.arange(cursor, cursor + cfg.key_per_batch) % len(order)
            cursor = (cursor + cfg.key_per_batch) % len(order)
            if cursor < cfg.key_per_batch:
                order = torch.randperm(len(key_y), generator=generator)
            kx, ky = key_x[order[take]], key_y[order[take]]
            xb = torch.cat([x, kx]).to(device=device, dtype=dtype)
            yb = torch.cat([y, ky]).to(device)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(logits_of(net, xb), yb)
            loss.backward()
            opt.step()
            step += 1
            if progress is not None:
                progress(step, steps)
    net.eval()
    return net


def require_images(data: DataLike, what: str) -> ImageDataset:
    """``data`` as an :class:`ImageDataset` (key images are built from uint8 images)."""
    if not isinstance(data, ImageDataset):
        raise AdvParamsError(f"{what} needs an ImageDataset (uint8 images with their normalisation)")
    return data


def num_outputs(model: nn.Module, example: torch.Tensor) -> int:
    """The number of classes ``model`` scores (one forward pass on ``example[:1]``)."""
    device, dtype = model_device(model), model_float_dtype(model)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return int(logits_of(model, example[:1].to(device=device, dtype=dtype)).shape[1])
    finally:
        model.train(was)


class Watermark(Configurable[C], ABC):
    """Base class of watermarks; the constructor takes the configuration only.

    :meth:`embed` trains the watermark into a copy of a model and returns the owner's key
    samples; :meth:`verify` queries a suspect with them and decides with a threshold
    calibrated on null models (:func:`calibrate`), never a constant.

    Attributes:
        extra_class: True when the watermarked model has one more output than the
            original (the additional-class scheme).
    """

    extra_class: ClassVar[bool] = False

    def embed(
        self,
        model: nn.Module,
        data: DataLike,
        *,
        generator: torch.Generator | None = None,
        progress: StepProgress = None,
    ) -> Watermarked:
        """Returns a watermarked copy of ``model`` and its key; ``model`` is not changed.

        Args:
            model: a trained classifier returning ``[N, C]`` scores.
            data: its clean training data (an :class:`ImageDataset`): key images are
                built from it and the watermark is trained in beside it.
            generator: randomness; default: seeded from the configuration's ``seed``.
            progress: ``progress(step, steps)`` after every training batch.
        """
        images = require_images(data, f"the {self.name} watermark")
        gen = (
            generator if generator is not None else torch.Generator().manual_seed(int(getattr(self.config, "seed", 0)))
        )
        start = time.perf_counter()
        out = self._embed(model, images, gen, progress)
        out.info["seconds"] = time.perf_counter() - start
        return out

    @abstractmethod
    def _embed(
        self, model: nn.Module, data: ImageDataset, generator: torch.Generator, progress: StepProgress = None
    ) -> Watermarked:
        """The scheme itself (see :meth:`embed`)."""

    def verify(self, model: nn.Module, key: WatermarkKey, calibration: Calibration) -> Verification:
        """Queries ``model`` with the key samples and decides at the calibrated threshold."""
        return verify(model, key, calibration)


def verify(model: nn.Module, key: WatermarkKey, calibration: Calibration) -> Verification:
    """The verification of ``model`` against ``key`` at ``calibration``'s threshold."""
    if calibration.num_queries != len(key):
        raise AdvParamsError(
            f"the calibration was made for {calibration.num_queries} key samples, the key has {len(key)}"
        )
    return calibration.verify(key.matches(model))


def calibrate_on(null_models: Sequence[nn.Module], key: WatermarkKey, fpr: float = 1e-6) -> Calibration:
    """:func:`calibrate` on the scores of ``null_models`` (independently trained models
    that never saw the watermark) for ``key``."""
    return calibrate([key.score(m) for m in null_models], len(key), fpr)


def trace(model: nn.Module, keys: Mapping[str, WatermarkKey]) -> tuple[str | None, dict[str, float]]:
    """Which user's copy ``model`` is, when each user got a copy with their own watermark:
    the user whose key ``model`` answers best, and every user's score. Decide with
    :func:`verify` on that user's key; a scheme whose copies answer each other's keys
    (check the scores) cannot trace this way."""
    scores = {u: k.score(model) for u, k in keys.items()}
    if not scores:
        return None, scores
    best = max(scores, key=lambda u: scores[u])
    return best, scores
