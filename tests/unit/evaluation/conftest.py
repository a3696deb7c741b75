"""A tiny evaluation on synthetic data, run once for the module's tests."""

from __future__ import annotations

import pytest

from advparams.evaluation import config_from_mapping, evaluate_protection

TINY = {
    "name": "tiny",
    "dataset": "synthetic",
    "model": "lenet",
    "seeds": [0, 1],
    "train": {"epochs": 2},
    "test_samples": 200,
    "schemes": [
        {"name": "advparams"},
        {"name": "random", "match_params": "advparams"},
        {"name": "hardened", "options": {"fraction": 0.5, "reproducible": True}},
    ],
    "attacks": [
        {"name": "finetune", "options": {"epochs": 1}, "grid": {"data_fraction": [0.05, 0.2]}},
        {"name": "key-leak", "grid": {"fraction": [0.0, 0.5, 1.0]}},
        {"name": "retrace", "options": {"steps": 5, "num_suspects": 20, "scratch": True}},
    ],
    "budgets": [1, 3],
}


@pytest.fixture(scope="session")
def tiny_config():
    return config_from_mapping(TINY)


@pytest.fixture(scope="session")
def tiny_run(tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    rows = evaluate_protection(tiny_config, out, device="cpu")
    return out, rows
