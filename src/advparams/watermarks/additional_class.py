"""Additional class with LSB-steganographic key images (Sun, Xue, Wang and Liu, arXiv
2104.09203, 2021).

The watermarked model gets one more output, class ``K``, and is trained to answer it for
the watermark key images; ownership is verified by querying those images. Each user's
fingerprint (:class:`~advparams.watermarks.users.UserTable`) is hidden in the key images
by LSB steganography, so a key image also says which user it was issued to: the model's
decision ignores the LSB plane, the fingerprint only identifies the user.

What the paper leaves open [inferred here]: the carriers of the key images (here training
images whose ``blocks x blocks`` cells are rearranged by a secret permutation, or uniform
noise), the key-set size (100) and how the class is trained in (fine-tuning the trained
model with the key images in every batch, 2 epochs).

What it lets you trace: one watermarked model serves every user, so the model itself
carries no user's fingerprint; a *key image* is traced to its user (who presented or
leaked it), not a leaked model. Per-user copies watermarked with different carriers do
not help here: a copy trained on one user's block-shuffled images also answers another
user's with the extra class (measured in ``docs/watermarks.md``). To trace leaked
models, give each user a copy with a distinct backdoor watermark (e.g. ``zhang-noise``
with the user's own seed) and use :func:`~advparams.watermarks.base.trace`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from advparams.data.base import ImageDataset
from advparams.errors import AdvParamsError
from advparams.fingerprint import model_fingerprint
from advparams.metrics.accuracy import predict
from advparams.registry import config_to_dict, validated
from advparams.watermarks._images import block_shuffle, with_extra_class
from advparams.watermarks.base import (
    WATERMARKS,
    Calibration,
    StepProgress,
    Verification,
    Watermark,
    Watermarked,
    WatermarkKey,
    num_outputs,
    train_with_key,
    verify,
)
from advparams.watermarks.lsb import hide_bits, reveal_bits
from advparams.watermarks.options import WatermarkOptions
from advparams.watermarks.users import Authentication, UserTable


@dataclass(frozen=True)
@validated
class AdditionalClassConfig(WatermarkOptions):
    """Settings of :class:`AdditionalClass` (and the shared :class:`WatermarkOptions`).

    Attributes:
        carrier: ``"blocks"`` (training images with their cells rearranged by a secret
            permutation) or ``"noise"`` (uniform random images).
        blocks: grid size of the block rearrangement.
        plane: the bit-plane that carries users' fingerprints.
    """

    carrier: Literal["blocks", "noise"] = "blocks"
    blocks: int = 4
    plane: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.carrier not in ("blocks", "noise"):
            raise ValueError(f"carrier must be 'blocks' or 'noise', got {self.carrier!r}")
        if self.blocks < 2:
            raise ValueError(f"blocks must be at least 2, got {self.blocks}")
        if not 0 <= self.plane <= 7:
            raise ValueError(f"plane must be in [0, 7], got {self.plane}")


def carrier_images(data: ImageDataset, cfg: AdditionalClassConfig, generator: torch.Generator) -> torch.Tensor:
    """The key images' carriers (uint8), before any fingerprint is hidden in them."""
    shape = (cfg.num_keys, *data.input_shape)
    if cfg.carrier == "noise":
        return torch.randint(0, 256, shape, generator=generator, dtype=torch.int64).to(torch.uint8)
    idx = torch.randperm(len(data), generator=generator)[: cfg.num_keys]
    if idx.numel() < cfg.num_keys:
        raise AdvParamsError(f"{cfg.num_keys} key images need as many training images; there are {len(data)}")
    perm = torch.randperm(cfg.blocks**2, generator=generator)
    while bool((perm == torch.arange(cfg.blocks**2)).any()):  # every cell leaves its place
        perm = torch.randperm(cfg.blocks**2, generator=generator)
    return block_shuffle(data.images[idx], cfg.blocks, perm)


@WATERMARKS.register("additional-class")
class AdditionalClass(Watermark[AdditionalClassConfig]):
    """Additional class + LSB steganographic key images (Sun, Xue, Wang, Liu, arXiv 2104.09203, 2021)."""

    name = "additional-class"
    Config = AdditionalClassConfig
    tiny = {"num_keys": 20, "epochs": 5, "lr": 3e-3, "batch_size": 32}
    extra_class = True

    def _embed(
        self, model: nn.Module, data: ImageDataset, generator: torch.Generator, progress: StepProgress = None
    ) -> Watermarked:
        cfg = self.config
        classes = num_outputs(model, data.tensors(torch.arange(1))[0])
        images = carrier_images(data, cfg, generator)
        labels = torch.full((cfg.num_keys,), classes, dtype=torch.long)
        net = with_extra_class(model, generator)
        key = WatermarkKey(self.name, images, labels, data.mean, data.std, classes + 1, config=config_to_dict(cfg))
        net = train_with_key(net, data, key.inputs(), labels, cfg.embed_config(), generator, progress)
        key = WatermarkKey(
            self.name, images, labels, data.mean, data.std, classes + 1, model_fingerprint(net), config_to_dict(cfg)
        )
        return Watermarked(net, key, {"num_keys": cfg.num_keys, "watermark_class": classes, "carrier": cfg.carrier})


def issue(key: WatermarkKey, table: UserTable, user: str, *, plane: int | None = None) -> WatermarkKey:
    """``user``'s copy of the key images: their fingerprint hidden in each image's LSB plane.

    Raises:
        UserTableError: ``user`` is not registered.
    """
    fp = table.fingerprint(user)
    p = int(key.config.get("plane", 0)) if plane is None else plane
    return key.with_images(hide_bits(key.images, fp, plane=p), user)


def identify(key: WatermarkKey, table: UserTable, *, plane: int | None = None) -> list[Authentication]:
    """Whose fingerprint each key image carries (``user`` None: unknown or forged)."""
    p = int(key.config.get("plane", 0)) if plane is None else plane
    bits = reveal_bits(key.images, table.bits, plane=p)
    return [table.authenticate(b) for b in bits]


@dataclass(frozen=True)
class UserAuthentication:
    """The authentication of one user's key images against a model.

    Attributes:
        user: who presented them.
        verification: the model's watermark verification on them.
        identified: share of the images whose fingerprint names ``user``.
        success: share of images both answered with the watermark class and naming ``user``.
    """

    user: str
    verification: Verification
    identified: float
    success: float


def authenticate_user(
    model: nn.Module, key: WatermarkKey, table: UserTable, calibration: Calibration
) -> UserAuthentication:
    """Authenticates the user whose copy of the key images ``key`` is: the model must
    recognise the images (watermark class) and their fingerprint must name the user."""
    if not key.user:
        raise AdvParamsError("this key carries no user's fingerprint; issue one with issue()")
    names = [a.user for a in identify(key, table)]
    preds_ok = _answers(model, key)
    named = torch.tensor([n == key.user for n in names])
    return UserAuthentication(
        key.user,
        verify(model, key, calibration),
        float(named.float().mean()),
        float((named & preds_ok).float().mean()),
    )


def _answers(model: nn.Module, key: WatermarkKey) -> torch.Tensor:
    return predict(model, (key.inputs(), key.labels)) == key.labels
