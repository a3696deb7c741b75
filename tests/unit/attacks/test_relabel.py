"""Output relabelling undoes any lock that only permutes the classes."""

import torch

from advparams.attacks import Relabel, RelabelConfig, Relabelled, majority_mapping
from advparams.metrics import accuracy, predict


def test_mapping_by_hand() -> None:
    # predicted 0 is mostly label 2; predicted 1 is label 0; 2 never predicted: itself.
    m = majority_mapping(torch.tensor([0, 0, 0, 1]), torch.tensor([2, 2, 1, 0]), 3)
    assert m.tolist() == [2, 0, 2]


def test_relabelled_argmax_is_the_mapped_prediction(trained) -> None:
    model, data = trained
    mapping = torch.tensor([3, 1, 2, 0, 4, 5, 6, 7, 9, 8])
    wrapped = Relabelled(model, mapping)
    assert torch.equal(predict(wrapped, data), mapping[predict(model, data)])


def test_relabel_undoes_a_class_permutation(trained) -> None:
    model, data = trained
    perm = torch.roll(torch.arange(10), 1)  # every class reported as the next one
    permuted = Relabelled(model, perm)
    assert accuracy(permuted, data) < 0.05
    res = Relabel(RelabelConfig(num_samples=200)).run(permuted, data)
    assert res.info["moved_classes"] == 10
    assert accuracy(res.model, data) == accuracy(model, data)


def test_relabel_cannot_help_a_constant_model(trained) -> None:
    from advparams.testing import ConstantClassifier

    _, data = trained
    const = ConstantClassifier(num_classes=10, label=3)
    res = Relabel().run(const, data)
    assert accuracy(res.model, data) == accuracy(const, data)
