"""Fixtures of the watermark tests: the shared tiny classifier, null models, fast options."""

from __future__ import annotations

import pytest
import torch

from advparams.testing import TinyConvNet
from advparams.training import TrainConfig, train
from advparams.watermarks import WATERMARKS


def fast(name: str) -> dict:
    """The watermark's own small options (``Watermark.tiny``): small keys, enough epochs for
    the tiny synthetic task (1x16x16, 600 samples)."""
    return dict(WATERMARKS.get(name).tiny)


@pytest.fixture(params=WATERMARKS.names())
def wm_name(request: pytest.FixtureRequest) -> str:
    """Every registered watermark: a new one is contract-tested the moment it is registered."""
    return request.param


@pytest.fixture(scope="session")
def null_models(trained):
    """Five tiny classifiers trained on the same data from other seeds: they never saw a watermark."""
    _, data = trained
    out = []
    for s in (11, 12, 13, 14, 15):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            net = TinyConvNet()
        cfg = TrainConfig(epochs=3, batch_size=32, lr=3e-3)
        out.append(train(net, data, cfg, generator=torch.Generator().manual_seed(s)).model)
    return out


@pytest.fixture(scope="session")
def embedded(trained):
    """Every watermark embedded once in the shared tiny classifier (seed 0)."""
    model, data = trained
    return {n: WATERMARKS.build(n, fast(n)).embed(model, data) for n in WATERMARKS.names()}
