"""A tiny language model trained in seconds on a tiny corpus, for the language-model tests."""

from __future__ import annotations

import pytest
import torch

from advparams.data.sequences import SequenceDataset, byte_windows
from advparams.training import TrainConfig, train_from_seed

pytest.importorskip("transformers", reason="transformers is installed by make (the test extra)")

LENGTH = 16
OPTIONS = {"vocab_size": 256, "input_size": LENGTH, "hidden_size": 32, "layers": 1, "heads": 2}


def documents(count: int, offset: int = 0) -> list[str]:
    """Small Python-like documents with a structure a tiny model learns at once."""
    return [f"def f{i}(x):\n    return x + {i % 7}\n\nclass C{i}:\n    pass\n" for i in range(offset, offset + count)]


@pytest.fixture(scope="package")
def corpus() -> tuple[SequenceDataset, SequenceDataset]:
    """Train and held-out windows, the bar measured on the held-out documents."""
    train = byte_windows(documents(300), length=LENGTH, name="tiny-code", held_out=documents(60, 1000))
    test = byte_windows(documents(60, 1000), length=LENGTH, name="tiny-code", held_out=documents(60, 1000))
    return train, test


@pytest.fixture(scope="package")
def language_model(corpus: tuple[SequenceDataset, SequenceDataset]) -> torch.nn.Module:
    train, _ = corpus
    return train_from_seed("gpt2", OPTIONS, train, TrainConfig(epochs=3, batch_size=16, lr=3e-3), seed=0).model
