import pytest
import torch

from advparams.data import ImageDataset, balanced_indices, gather, iter_batches, load_dataset
from advparams.errors import DataError, UnknownNameError


def test_balanced_indices_even_and_deterministic() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 5)
    idx = balanced_indices(labels, 30, torch.Generator().manual_seed(0))
    counts = torch.bincount(labels[idx], minlength=3).tolist()
    assert counts == [13, 12, 5] or counts == [12, 13, 5]
    assert len(set(idx.tolist())) == 30
    again = balanced_indices(labels, 30, torch.Generator().manual_seed(0))
    assert torch.equal(idx, again)


def test_iter_batches_covers_everything_once() -> None:
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    seen = torch.cat([b for _, b in iter_batches((x, y), 3, shuffle=True, generator=torch.Generator().manual_seed(1))])
    assert sorted(seen.tolist()) == list(range(10))
    ds = torch.utils.data.TensorDataset(x, y)
    assert torch.equal(torch.cat([b for _, b in iter_batches(ds, 4)]), y)
    gx, gy = gather(ds, torch.tensor([7, 2]))
    assert gy.tolist() == [7, 2] and gx[:, 0].tolist() == [7.0, 2.0]


def test_image_dataset_validates() -> None:
    with pytest.raises(DataError, match="uint8"):
        ImageDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2), mean=(0.5,), std=(0.5,), num_classes=2)
    with pytest.raises(DataError, match="labels must lie"):
        ImageDataset(
            torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 5]), mean=(0.5,), std=(0.5,), num_classes=2
        )


def test_load_dataset_errors() -> None:
    with pytest.raises(UnknownNameError, match="known:"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="split"):
        load_dataset("synthetic", "validation")


def test_synthetic_splits_share_templates() -> None:
    tr, te = load_dataset("synthetic", "train"), load_dataset("synthetic", "test")
    assert len(tr) == 2000 and len(te) == 500 and tr.input_shape == (1, 16, 16)
    assert not torch.equal(tr.images[:10], te.images[:10])
    # Class means agree across splits (same templates, independent noise).
    m_tr = tr.images[tr.labels == 3].float().mean(0)
    m_te = te.images[te.labels == 3].float().mean(0)
    assert (m_tr - m_te).abs().mean() < 10
