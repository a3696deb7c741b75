"""The options every watermark shares: how many key samples, and how they are trained in."""

from __future__ import annotations

from dataclasses import dataclass

from advparams.registry import validated
from advparams.watermarks.base import EmbedConfig


@dataclass(frozen=True)
@validated
class WatermarkOptions:
    """Options shared by every watermark of the family.

    Attributes:
        num_keys: key samples (queries per verification).
        epochs: passes over the clean training data while the watermark is trained in.
        lr: Adam learning rate of that fine-tuning.
        batch_size: clean samples per step.
        key_per_batch: key samples added to every step.
        seed: seeds the key samples and the training order.
    """

    num_keys: int = 100
    epochs: int = 2
    lr: float = 5e-4
    batch_size: int = 128
    key_per_batch: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_keys < 1:
            raise ValueError(f"num_keys must be at least 1, got {self.num_keys}")
        self.embed_config()  # validates the training options

    def embed_config(self) -> EmbedConfig:
        """The training options as an :class:`EmbedConfig`."""
        return EmbedConfig(self.epochs, self.lr, self.batch_size, self.key_per_batch)
