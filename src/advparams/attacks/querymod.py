"""Query modification attack on backdoor-style watermarks (Namba and Sakuma, AsiaCCS
2019): the thief serves the stolen model behind a filter that detects key-like queries
and alters them, so the owner's key samples no longer get the watermark answer.

Detection: an autoencoder trained on the attacker's clean data flags a query whose
reconstruction error is above the ``quantile`` of the errors on held-out clean data.
Modification: a flagged query is replaced by its reconstruction (``autoencoder``), by a
JPEG-compressed copy (``jpeg``, needs Pillow), or both get every query (``detect:
false``: an input-transformation defence). The attacked "model" is the filter plus the
unchanged model, an ``nn.Module`` like any other, so clean accuracy and watermark
retention are measured on it the same way.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from advparams._rng import isolated_seed
from advparams.attacks._images import attacker_images, normalisation
from advparams.attacks.base import ATTACKS, Attack, Attacked, require_data
from advparams.data.base import DataLike, iter_batches
from advparams.devices import model_device, model_float_dtype
from advparams.errors import AdvParamsError
from advparams.keys.key import Key
from advparams.registry import validated


@dataclass(frozen=True)
@validated
class QueryModifyConfig:
    """Settings of :class:`QueryModify`.

    Attributes:
        mode: ``"autoencoder"`` (replace by the reconstruction) or ``"jpeg"``.
        detect: alter only the queries the autoencoder flags (False: alter every query).
        quantile: share of held-out clean queries left unflagged (sets the threshold).
        quality: JPEG quality (1-95), for ``mode: jpeg``.
        data_fraction: share of the training data the attacker holds.
        epochs: autoencoder training epochs.
        seed: seeds the samples and the autoencoder.
    """

    mode: Literal["autoencoder", "jpeg"] = "autoencoder"
    detect: bool = True
    quantile: float = 0.99
    quality: int = 50
    data_fraction: float = 0.1
    epochs: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("autoencoder", "jpeg"):
            raise ValueError(f"mode must be 'autoencoder' or 'jpeg', got {self.mode!r}")
        if not 0.5 <= self.quantile < 1.0:
            raise ValueError(f"quantile must be in [0.5, 1), got {self.quantile}")
        if not 1 <= self.quality <= 95:
            raise ValueError(f"quality must be in [1, 95], got {self.quality}")
        if not 0.0 < self.data_fraction <= 1.0:
            raise ValueError(f"data_fraction must be in (0, 1], got {self.data_fraction}")
        if self.epochs < 1:
            raise ValueError("epochs must be at least 1")


class AutoEncoder(nn.Module):
    """A small convolutional autoencoder (two stride-2 convolutions down, two up)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.encode = nn.Sequential(
            nn.Conv2d(channels, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.decode = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(16, channels, 4, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.decode(self.encode(x))
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out


def reconstruction_error(ae: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean squared reconstruction error of each sample."""
    with torch.no_grad():
        return (ae(x) - x).pow(2).flatten(1).mean(1)


def jpeg(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip of normalised images ``x`` (de-normalised to uint8 and back)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with the test and jpeg extras
        raise AdvParamsError("the jpeg query modification needs Pillow: pip install 'advparams[jpeg]'") from None
    pixels = ((x.detach().cpu().float() * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
    out = torch.empty_like(pixels)
    for i, img in enumerate(pixels):
        arr = img.permute(1, 2, 0).numpy()
        pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        back = torch.from_numpy(__import__("numpy").array(Image.open(buf)))
        out[i] = back.reshape(img.shape[1], img.shape[2], -1).permute(2, 0, 1)
    return ((out.float() / 255.0 - mean) / std).to(device=x.device, dtype=x.dtype)


class QueryFilter(nn.Module):
    """The stolen model behind a query filter (see the module docstring).

    Attributes:
        model: the unchanged stolen model.
        autoencoder: the detector (and the modifier in ``autoencoder`` mode).
        threshold: reconstruction error above which a query is flagged.
    """

    def __init__(
        self,
        model: nn.Module,
        autoencoder: nn.Module,
        threshold: float,
        cfg: QueryModifyConfig,
        mean: torch.Tensor,
        std: torch.Tensor,
    ) -> None:
        super().__init__()
        self.model = model
        self.autoencoder = autoencoder
        self.threshold = threshold
        self.cfg = cfg
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.mean: torch.Tensor
        self.std: torch.Tensor

    def flagged(self, x: torch.Tensor) -> torch.Tensor:
        """Which queries the filter alters (all of them without detection)."""
        if not self.cfg.detect:
            return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        return reconstruction_error(self.autoencoder, x) > self.threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flag = self.flagged(x)
        if bool(flag.any()):
            x = x.clone()
            sel = x[flag]
            if self.cfg.mode == "autoencoder":
                with torch.no_grad():
                    x[flag] = self.autoencoder(sel)
            else:
                x[flag] = jpeg(sel, self.mean.cpu(), self.std.cpu(), self.cfg.quality).to(x.device)
        return self.model(x)


@ATTACKS.register("query-modify")
class QueryModify(Attack[QueryModifyConfig]):
    """Query modification: detect key queries with an autoencoder and alter them (Namba & Sakuma, AsiaCCS 2019)."""

    name = "query-modify"
    filters_queries = True
    Config = QueryModifyConfig
    tiny = {"epochs": 1}

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Trains the detector on the attacker's data and wraps a copy of ``model``."""
        data = require_data(data, self.name)
        cfg = self.config
        idx, x, _ = attacker_images(data, cfg.data_fraction, generator, self.name)
        held = max(1, x.shape[0] // 5)
        fit_x, held_x = x[held:], x[:held]
        if fit_x.shape[0] == 0:
            fit_x = held_x
        device, dtype = model_device(model), model_float_dtype(model)
        with isolated_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator))):
            ae = AutoEncoder(x.shape[1])  # reproducible initialisation without a global seed
        ae = ae.to(device=device, dtype=dtype)
        opt = torch.optim.Adam(ae.parameters(), lr=1e-3)
        for _ in range(cfg.epochs):
            for xb, _ in iter_batches((fit_x, torch.zeros(fit_x.shape[0])), 128, shuffle=True, generator=generator):
                xb = xb.to(device=device, dtype=dtype)
                opt.zero_grad(set_to_none=True)
                F.mse_loss(ae(xb), xb).backward()
                opt.step()
        ae.eval()
        errors = reconstruction_error(ae, held_x.to(device=device, dtype=dtype)).cpu()
        threshold = float(torch.quantile(errors.double(), cfg.quantile))
        mean, std = normalisation(data, x.shape[1])
        wrapped = QueryFilter(copy.deepcopy(model), ae, threshold, cfg, mean.to(device), std.to(device)).eval()
        info = {"num_samples": int(idx.numel()), "threshold": threshold, "held_out": held}
        return Attacked(wrapped, {}, info)
