"""Fixtures of the fingerprint tests: the shared tiny classifier and independent ones."""

from __future__ import annotations

import pytest
import torch

from advparams.fingerprints import FINGERPRINTS
from advparams.testing import TinyConvNet
from advparams.training import TrainConfig, train


def fast(name: str) -> dict:
    """The fingerprint's own small options (``tiny``), fit for 1x16x16 images."""
    return dict(FINGERPRINTS.get(name).tiny)


@pytest.fixture(params=FINGERPRINTS.names())
def fp_name(request: pytest.FixtureRequest) -> str:
    """Every registered fingerprint: a new one is contract-tested the moment it is registered."""
    return request.param


@pytest.fixture(scope="session")
def independent(trained):
    """Ten tiny classifiers trained on the same data from other seeds (not copies): nine to
    calibrate a threshold on and one held out. Three null models left the normal fit so
    loose that InFIP's threshold at fpr 0.05 lay above the owner's own score of 1.0 (their
    InFIP scores range 0.23-0.77 on this task)."""
    _, data = trained
    out = []
    for s in range(21, 31):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            net = TinyConvNet()
        cfg = TrainConfig(epochs=3, batch_size=32, lr=3e-3)
        out.append(train(net, data, cfg, generator=torch.Generator().manual_seed(s)).model)
    return out
