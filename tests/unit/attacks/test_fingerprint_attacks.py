"""The attacks on fingerprints: distillation and the adaptive attack on relevance maps."""

from __future__ import annotations

import pytest
import torch

from advparams.attacks import ATTACKS
from advparams.fingerprints import FINGERPRINTS
from advparams.metrics import accuracy
from advparams.testing import state_equal


@pytest.mark.parametrize("labels", ["hard", "soft"])
def test_distillation_learns_the_task_in_a_fresh_network(trained, labels) -> None:
    model, data = trained
    res = ATTACKS.build(
        "distill", {"epochs": 5, "batch_size": 32, "lr": 3e-3, "data_fraction": 0.5, "labels": labels}
    ).run(model, data)
    student = res.model
    assert type(student) is type(model) and not state_equal(student, model)
    # Nothing of the stolen weights is kept: the fresh net starts from another initialisation.
    first = dict(student.named_parameters())["conv.weight"]
    assert not torch.allclose(first, dict(model.named_parameters())["conv.weight"], atol=1e-3)
    assert accuracy(student, data) > 0.5  # it learnt the stolen model's answers (10 classes)
    assert res.info["num_samples"] == 300 and res.info["labels"] == labels


def test_relevance_evasion_pushes_maps_away_at_a_cost_the_weight_sets(trained) -> None:
    model, data = trained
    fp = FINGERPRINTS.build("infip", {"probes": 16, "pool": 16, "sigma": 0.5}).extract(model, data)
    scheme = FINGERPRINTS.build("infip", {"sigma": 0.5})
    options = {"epochs": 4, "lr": 1e-2, "data_fraction": 0.5, "relevance_samples": 16, "sigma": 0.5}
    plain = ATTACKS.build("relevance-evasion", {**options, "weight": 0.0}).run(model, data)
    pushed = ATTACKS.build("relevance-evasion", {**options, "weight": 20.0}).run(model, data)
    assert scheme.score(pushed.model, fp) < scheme.score(plain.model, fp) - 0.2
    assert pushed.info["ssim_last_batch"] < pushed.info["ssim_first_batch"]


def test_relevance_evasion_needs_images(trained) -> None:
    from advparams.errors import AdvParamsError

    model, data = trained
    x, y = data.tensors()
    with pytest.raises(AdvParamsError, match="ImageDataset"):
        ATTACKS.build("relevance-evasion", {}).run(model, (x, y))
