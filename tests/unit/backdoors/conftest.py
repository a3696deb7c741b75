"""Fixtures of the backdoor tests: every registered backdoor, tiny data of 1 and 3 channels."""

from __future__ import annotations

import pytest

from advparams.backdoors import BACKDOORS
from advparams.data import ImageDataset
from advparams.data.synthetic import make_synthetic


@pytest.fixture(params=BACKDOORS.names())
def backdoor_name(request: pytest.FixtureRequest) -> str:
    """Every registered backdoor: a new one is contract-tested the moment it is registered."""
    return request.param


@pytest.fixture(scope="session")
def grey() -> ImageDataset:
    return make_synthetic(400, input_size=16, seed=1)


@pytest.fixture(scope="session")
def colour() -> ImageDataset:
    return make_synthetic(400, in_channels=3, input_size=16, seed=1)
