"""Shared fixtures. Fast tests use tiny synthetic data and tiny nets on the CPU."""

from __future__ import annotations

import os

import pytest
import torch

from advparams.devices import strict_mkl
from advparams.schemes import SCHEMES
from advparams.testing import TinyConvNet, tiny_data, tiny_trained_classifier

strict_mkl()  # as the command line does, before this process's first matrix product

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one thread each, or torch's spinning
    # threads starve each other (a 30 s study took ten minutes beside another job)
    torch.set_num_threads(1)
    # and so do the processes the tests start (the command line in a subprocess, Ray's
    # workers, the kill tests' victims): torch and the engine read this cap
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="module", autouse=True)
def _registries_as_they_were() -> object:
    """What a test file registers (an owner's module given to --import) is gone after it,
    so the files a process runs next (one of several xdist workers) see the registries as
    a fresh process does."""
    from advparams.house import families, registries, unregister_family

    before = [(reg, dict(reg._items)) for reg, _ in registries().values()]
    houses = {f.name for f in families()}
    yield
    for family in families():
        if family.name not in houses:
            unregister_family(family.name)
    for reg, items in before:
        reg._items.clear()
        reg._items.update(items)


@pytest.fixture(autouse=True)
def _few_threads_and_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVPARAMS_OFFLINE", "1")
    monkeypatch.delenv("ADVPARAMS_PASSPHRASE", raising=False)


@pytest.fixture(scope="session")
def trained() -> tuple[torch.nn.Module, object]:
    """A TinyConvNet trained to ~100% on synthetic data (shared, never mutate it)."""
    return tiny_trained_classifier(seed=0)


@pytest.fixture
def fresh_net() -> TinyConvNet:
    torch.manual_seed(0)
    return TinyConvNet()


@pytest.fixture(scope="session")
def data():
    return tiny_data()


@pytest.fixture(params=SCHEMES.names())
def scheme_name(request: pytest.FixtureRequest) -> str:
    """Every registered scheme: a new scheme is contract-tested the moment it is registered."""
    return request.param
