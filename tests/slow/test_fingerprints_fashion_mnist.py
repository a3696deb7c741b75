"""Ownership fingerprints on the real Fashion-MNIST (under a minute; run by `make test`).

The full measurements are the evaluations of docs/fingerprints.md; this checks, on a subset
and few epochs, that a fine-tuned copy of a LeNet-5 scores above independently trained
ones for both fingerprints, and that the DTD maps of a real model conserve relevance.
"""

import pytest
import torch

from advparams.attacks import ATTACKS
from advparams.data import load_dataset
from advparams.fingerprints import FINGERPRINTS, calibrate_on, dtd_relevance
from advparams.training import TrainConfig, train_from_seed
from tests.slow.realdata import require_fashion_mnist

pytestmark = pytest.mark.slow

OPTIONS = {"num_classes": 10, "in_channels": 1, "input_size": 28}


@pytest.fixture(scope="module")
def real():  # type: ignore[no-untyped-def]
    require_fashion_mnist()
    train = load_dataset("fashion-mnist", "train")
    train = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:10000])
    models = [train_from_seed("lenet", OPTIONS, train, TrainConfig(epochs=2), seed=s).model for s in range(5)]
    return train, models


def test_a_fine_tuned_copy_beats_independent_models(real) -> None:  # type: ignore[no-untyped-def]
    train, (owner, *others) = real
    copy = ATTACKS.build("finetune", {"data_fraction": 0.05, "epochs": 2, "scratch": False}).run(owner, train).model
    for name in FINGERPRINTS.names():
        scheme = FINGERPRINTS.build(name, {})
        fp = scheme.extract(owner, train)
        cal = calibrate_on(others[:2], fp, fpr=0.01)
        assert scheme.verify(copy, fp, cal).decision, name
        assert scheme.score(copy, fp) > max(scheme.score(m, fp) for m in others), name


def test_dtd_maps_of_a_real_lenet_conserve_relevance(real) -> None:  # type: ignore[no-untyped-def]
    train, (owner, *_) = real
    x, _ = train.tensors(torch.arange(16))
    with torch.no_grad():
        scores = owner(x)
    labels = scores.argmax(1)
    (mean,), (std,) = train.mean, train.std
    low, high = (0 - mean) / std, (1 - mean) / std
    r = dtd_relevance(owner, x, labels, low=low, high=high)
    explained = scores.gather(1, labels.view(-1, 1)).squeeze(1)
    assert r.flatten(1).sum(1) == pytest.approx(explained, rel=1e-3, abs=1e-4)
