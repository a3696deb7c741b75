"""Backdoor watermarks of Zhang et al., "Protecting Intellectual Property of Deep Neural
Networks with Watermarking" (AsiaCCS 2018): content, noise and unrelated-image keys.

Each scheme makes key images that the model is trained to answer with one target label:

* ``zhang-content``: training images of other classes stamped with the word "TEST";
* ``zhang-noise``: training images of other classes plus one fixed Gaussian noise
  pattern (std ``noise_std`` of the pixel range);
* ``zhang-unrelated``: out-of-distribution images (here: drawn digit glyphs, as the
  paper used MNIST digits for CIFAR-10; no second data set is needed offline).

[inferred] placement and size of the logo, a fixed (not per-image) noise pattern, the
glyph images, and training the keys in by fine-tuning the trained model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advparams.data.base import ImageDataset
from advparams.errors import AdvParamsError
from advparams.fingerprint import model_fingerprint
from advparams.registry import config_to_dict, validated
from advparams.watermarks._images import glyph_images, stamp, text_mask
from advparams.watermarks.base import (
    WATERMARKS,
    StepProgress,
    Watermark,
    Watermarked,
    WatermarkKey,
    num_outputs,
    train_with_key,
)
from advparams.watermarks.options import WatermarkOptions


@dataclass(frozen=True)
@validated
class ZhangConfig(WatermarkOptions):
    """Settings of the Zhang et al. watermarks (and the shared :class:`WatermarkOptions`).

    Attributes:
        target: the watermark label (None: drawn from the seed).
        noise_std: std of the noise pattern as a share of the pixel range (noise only).
    """

    target: int | None = None
    noise_std: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target is not None and self.target < 0:
            raise ValueError(f"target must be a class index, got {self.target}")
        if not 0.0 < self.noise_std <= 1.0:
            raise ValueError(f"noise_std must be in (0, 1], got {self.noise_std}")


class _Zhang(Watermark[ZhangConfig]):
    Config = ZhangConfig
    tiny = {"num_keys": 20, "epochs": 5, "lr": 3e-3, "batch_size": 32}

    def _sources(self, data: ImageDataset, target: int, generator: torch.Generator) -> torch.Tensor:
        """``num_keys`` training images whose label is not ``target``."""
        pool = torch.nonzero(data.labels != target).reshape(-1)
        pick = pool[torch.randperm(pool.numel(), generator=generator)[: self.config.num_keys]]
        if pick.numel() < self.config.num_keys:
            raise AdvParamsError(f"{self.config.num_keys} key images need as many training images of other classes")
        return data.images[pick]

    def _keys(self, data: ImageDataset, target: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def _embed(
        self, model: nn.Module, data: ImageDataset, generator: torch.Generator, progress: StepProgress = None
    ) -> Watermarked:
        cfg = self.config
        classes = num_outputs(model, data.tensors(torch.arange(1))[0])
        target = int(torch.randint(0, classes, (1,), generator=generator)) if cfg.target is None else cfg.target
        if target >= classes:
            raise AdvParamsError(f"target {target} is not a class of a {classes}-class model")
        images = self._keys(data, target, generator)
        labels = torch.full((cfg.num_keys,), target, dtype=torch.long)
        key = WatermarkKey(self.name, images, labels, data.mean, data.std, classes)
        net = train_with_key(model, data, key.inputs(), labels, cfg.embed_config(), generator, progress)
        key = WatermarkKey(
            self.name, images, labels, data.mean, data.std, classes, model_fingerprint(net), config_to_dict(cfg)
        )
        return Watermarked(net, key, {"num_keys": cfg.num_keys, "target": target})


@WATERMARKS.register("zhang-content")
class ZhangContent(_Zhang):
    """Content ("TEST" logo) backdoor watermark (Zhang et al., AsiaCCS 2018)."""

    name = "zhang-content"

    def _keys(self, data: ImageDataset, target: int, generator: torch.Generator) -> torch.Tensor:
        _, h, w = data.input_shape
        mask = text_mask("TEST", max(1, w // 20))
        return stamp(self._sources(data, target, generator), mask, h - mask.shape[0] - 2, 2)


@WATERMARKS.register("zhang-noise")
class ZhangNoise(_Zhang):
    """Noise backdoor watermark (Zhang et al., AsiaCCS 2018)."""

    name = "zhang-noise"

    def _keys(self, data: ImageDataset, target: int, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(data.input_shape, generator=generator) * (255.0 * self.config.noise_std)
        sources = self._sources(data, target, generator)
        return (sources.float() + noise).round().clamp(0, 255).to(torch.uint8)


@WATERMARKS.register("zhang-unrelated")
class ZhangUnrelated(_Zhang):
    """Unrelated-image backdoor watermark (Zhang et al., AsiaCCS 2018)."""

    name = "zhang-unrelated"

    def _keys(self, data: ImageDataset, target: int, generator: torch.Generator) -> torch.Tensor:
        return glyph_images(self.config.num_keys, data.input_shape, generator)
