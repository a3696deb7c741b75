"""An adaptive attack on relevance-map fingerprints: fine-tuning that pushes the model's
DTD maps away from the stolen model's.

A thief who knows that ownership is checked by comparing Deep Taylor Decomposition maps
(InFIP) fine-tunes the stolen model on their own data with cross-entropy plus a term
that rewards maps unlike the original's on those inputs:

    CE(f(x), y) - weight * log(1.01 - SSIM(D_f(x), D_orig(x)))

where ``D`` is the fingerprint image of the DTD map for the class the stolen model gave
``x`` (the class a verifier explains) and SSIM is the verifier's similarity. The thief does
not know the secret probes, only the method. (A plain ``+ weight * SSIM`` barely moves:
SSIM's gradient is zero where the maps are equal, which is where the attack starts.) The
map is differentiated through zennit's rules (``create_graph``); BatchNorm is not merged
for that (the merge writes weights in place), so on a BatchNorm network the attack follows
the map of the unmerged network, a surrogate of the one verified [inferred].
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from advparams.attacks.base import ATTACKS, Attack, Attacked, attacker_indices, require_data
from advparams.data.base import DataLike, ImageDataset, all_labels
from advparams.devices import model_device, model_float_dtype
from advparams.errors import AdvParamsError
from advparams.fingerprints.relevance import dtd_relevance, fingerprint_images
from advparams.keys.key import Key
from advparams.metrics.accuracy import logits_of
from advparams.metrics.backdoor import ssim_images
from advparams.registry import validated
from advparams.training import TrainConfig, make_optimizer


@dataclass(frozen=True)
@validated
class RelevanceEvasionConfig:
    """Settings of :class:`RelevanceEvasion`.

    Attributes:
        data_fraction: share of the training data the thief holds.
        weight: weight of the SSIM term against cross-entropy [inferred].
        relevance_samples: inputs of each batch whose maps enter the term (maps cost
            about three backward passes each).
        sigma: the SSIM window the thief assumes (the verifier's default 1.5).
        epochs: passes over the thief's data.
        lr: learning rate.
        optimizer: ``"adam"`` or ``"sgd"``.
        batch_size: samples per step.
        seed: seeds the samples and the shuffling.
    """

    data_fraction: float = 0.05
    weight: float = 1.0
    relevance_samples: int = 16
    sigma: float = 1.5
    epochs: int = 5
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.data_fraction <= 1.0:
            raise ValueError(f"data_fraction must be in (0, 1], got {self.data_fraction}")
        if self.weight < 0 or self.relevance_samples < 1:
            raise ValueError("weight must be non-negative and relevance_samples at least 1")
        if not 0.1 <= self.sigma <= 10.0:
            raise ValueError(f"sigma must be in [0.1, 10], got {self.sigma}")
        TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer)


@ATTACKS.register("relevance-evasion")
class RelevanceEvasion(Attack[RelevanceEvasionConfig]):
    """Adaptive attack on InFIP: fine-tuning against the similarity of DTD maps."""

    name = "relevance-evasion"
    Config = RelevanceEvasionConfig
    tiny = {"epochs": 1, "data_fraction": 0.2, "relevance_samples": 4, "sigma": 0.5}

    def attack(self, model: nn.Module, data: DataLike | None, generator: torch.Generator, key: Key | None) -> Attacked:
        """Fine-tunes a copy of ``model`` against the similarity of its maps to ``model``'s."""
        data = require_data(data, self.name)
        if not isinstance(data, ImageDataset):
            raise AdvParamsError("the relevance-evasion attack needs an ImageDataset (the image box of its inputs)")
        cfg = self.config
        idx = attacker_indices(all_labels(data), cfg.data_fraction, generator)
        x_all, y_all = data.tensors(idx)
        device, dtype = model_device(model), model_float_dtype(model)
        mean = torch.tensor(data.mean, device=device, dtype=dtype).view(1, -1, 1, 1)
        std = torch.tensor(data.std, device=device, dtype=dtype).view(1, -1, 1, 1)
        low, high = -mean / std, (1.0 - mean) / std
        net = copy.deepcopy(model)
        for p in net.parameters():
            if p.is_floating_point():
                p.requires_grad_(True)
        opt = make_optimizer(
            net, TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, optimizer=cfg.optimizer)
        )
        first, last, steps = None, 0.0, 0
        for _ in range(cfg.epochs):
            for b in torch.randperm(len(idx), generator=generator).split(cfg.batch_size):
                x, y = x_all[b].to(device=device, dtype=dtype), y_all[b].to(device)
                xr = x[: cfg.relevance_samples]
                with torch.no_grad():
                    explained = logits_of(model.eval(), xr).argmax(1)
                # The stolen model's map as the attack's own is made (BatchNorm not merged),
                # so that the term compares like with like.
                original = fingerprint_images(
                    dtd_relevance(model, xr, explained, low=low, high=high, merge_batch_norm=False)
                )
                net.train()
                ce = F.cross_entropy(logits_of(net, x), y)
                mine = fingerprint_images(dtd_relevance(net, xr, explained, low=low, high=high, create_graph=True))
                similar = ssim_images(mine, original, data_range=1.0, sigma=cfg.sigma).mean()
                # -log(1.01 - SSIM): SSIM's gradient vanishes where the maps are equal (its
                # maximum), so the log's steep slope there is what moves them apart at first.
                loss = ce - cfg.weight * torch.log(1.01 - similar.to(ce.dtype))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                first = float(similar.detach()) if first is None else first
                last, steps = float(similar.detach()), steps + 1
        net.eval()
        info = {"num_samples": int(idx.numel()), "steps": steps, "ssim_first_batch": first, "ssim_last_batch": last}
        return Attacked(net, {}, info)


__all__ = ["RelevanceEvasion", "RelevanceEvasionConfig"]
