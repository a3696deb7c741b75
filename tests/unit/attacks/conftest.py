"""Fixtures of the attack tests."""

from __future__ import annotations

import pytest

from advparams import AdvParams


@pytest.fixture(scope="session")
def locked(trained):
    """``(locked model, its key, data)``: the shared tiny classifier locked by AdvParams."""
    model, data = trained
    res = AdvParams().lock(model, data)
    return res.model, res.key, data
