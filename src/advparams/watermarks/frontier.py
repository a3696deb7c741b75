"""Adversarial frontier stitching (Le Merrer, Pérez and Trédan, Neural Computing and
Applications 2019).

Key samples are FGSM adversarial examples of the trained model: half *true adversaries*
(the model's answer flipped) and half *false adversaries* (its answer held), all labelled
with their true class; the model is fine-tuned until it answers them correctly, which
moves its decision frontier around them. An unrelated model misclassifies many of the
true adversaries, so the calibrated threshold is well above chance.

[inferred] ``eps`` is in units of the [0, 1] pixel range: 0.05 (the paper used 0.25 on MNIST,
which flips 91% of a Fashion-MNIST LeNet-5's answers, too few false adversaries; 0.05 flips
60%), and the keys are trained in like the other watermarks' (fine-tuning with the keys
in every batch) rather than until a stopping accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advparams.data.base import ImageDataset
from advparams.devices import model_device, model_float_dtype
from advparams.errors import AdvParamsError
from advparams.fingerprint import model_fingerprint
from advparams.metrics.accuracy import logits_of
from advparams.registry import config_to_dict, validated
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
class FrontierStitchingConfig(WatermarkOptions):
    """Settings of :class:`FrontierStitching` (and the shared :class:`WatermarkOptions`).

    Attributes:
        eps: FGSM step, in units of the [0, 1] pixel range.
        candidates: training images tried to find enough true and false adversaries.
    """

    eps: float = 0.05
    candidates: int = 2000

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.eps <= 1.0:
            raise ValueError(f"eps must be in (0, 1], got {self.eps}")
        if self.candidates < self.num_keys:
            raise ValueError("candidates must be at least num_keys")


def fgsm_images(model: nn.Module, data: ImageDataset, idx: torch.Tensor, eps: float) -> torch.Tensor:
    """uint8 FGSM adversarial examples (one signed-gradient step of ``eps`` in pixel units)
    of ``data``'s images at ``idx`` against their true labels."""
    device, dtype = model_device(model), model_float_dtype(model)
    x, y = data.tensors(idx)
    x = x.to(device=device, dtype=dtype).requires_grad_(True)
    was = model.training
    model.eval()
    try:
        loss = F.cross_entropy(logits_of(model, x), y.to(device))
        (grad,) = torch.autograd.grad(loss, x)
    finally:
        model.train(was)
    # Normalisation divides by a positive std, so the sign of the pixel gradient is the
    # sign of the normalised one.
    pixels = data.images[idx].float() / 255.0 + eps * grad.sign().cpu().float()
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8)


@WATERMARKS.register("frontier-stitching")
class FrontierStitching(Watermark[FrontierStitchingConfig]):
    """Adversarial frontier stitching (Le Merrer, Pérez, Trédan, Neural Comput. Appl., 2019)."""

    name = "frontier-stitching"
    Config = FrontierStitchingConfig
    tiny = {"num_keys": 20, "epochs": 5, "lr": 3e-3, "batch_size": 32, "eps": 0.05, "candidates": 600}

    def _embed(
        self, model: nn.Module, data: ImageDataset, generator: torch.Generator, progress: StepProgress = None
    ) -> Watermarked:
        cfg = self.config
        classes = num_outputs(model, data.tensors(torch.arange(1))[0])
        idx = torch.randperm(len(data), generator=generator)[: cfg.candidates]
        adv = torch.cat([fgsm_images(model, data, chunk, cfg.eps) for chunk in idx.split(500)])
        labels = data.labels[idx]
        probe = WatermarkKey(self.name, adv, labels, data.mean, data.std, classes)
        from advparams.metrics.accuracy import predict

        clean_ok = predict(model, data.subset(idx)) == labels
        adv_ok = predict(model, (probe.inputs(), labels)) == labels
        true_adv = torch.nonzero(clean_ok & ~adv_ok).reshape(-1)
        false_adv = torch.nonzero(clean_ok & adv_ok).reshape(-1)
        half = cfg.num_keys // 2
        if true_adv.numel() < cfg.num_keys - half or false_adv.numel() < half:
            raise AdvParamsError(
                f"found {true_adv.numel()} true and {false_adv.numel()} false adversaries among "
                f"{cfg.candidates} candidates; raise candidates or change eps"
            )
        pick = torch.cat([true_adv[: cfg.num_keys - half], false_adv[:half]])
        images, key_labels = adv[pick], labels[pick]
        net = train_with_key(model, data, probe.inputs(images), key_labels, cfg.embed_config(), generator, progress)
        key = WatermarkKey(
            self.name, images, key_labels, data.mean, data.std, classes, model_fingerprint(net), config_to_dict(cfg)
        )
        return Watermarked(
            net,
            key,
            {
                "num_keys": cfg.num_keys,
                "true_adversaries": int(cfg.num_keys - half),
                "false_adversaries": half,
                "found_true": int(true_adv.numel()),
                "found_false": int(false_adv.numel()),
            },
        )
