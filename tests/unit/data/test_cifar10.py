import numpy as np
import pytest
import torch

from advparams.data import load_dataset
from advparams.errors import DataError

from .helpers import write_cifar_binary, write_cifar_python


@pytest.mark.parametrize("writer", [write_cifar_python, write_cifar_binary], ids=["python", "binary"])
def test_reads_official_layouts(tmp_path, writer) -> None:
    written = writer(tmp_path)
    train = load_dataset("cifar10", "train", tmp_path)
    test = load_dataset("cifar10", "test", tmp_path)
    assert train.images.shape == (30, 3, 32, 32) and test.images.shape == (6, 3, 32, 32)
    data, labels = written["test_batch"]
    # Official layout: 1024 red, then green, then blue values, each row-major.
    assert torch.equal(test.images, torch.from_numpy(np.asarray(data).reshape(6, 3, 32, 32)))
    assert test.labels.tolist() == [int(v) for v in labels]
    assert test.images[2, 1, 0, 5] == int(np.asarray(data)[2, 1024 + 5])


def test_root_may_be_the_batches_folder(tmp_path) -> None:
    write_cifar_python(tmp_path)
    ds = load_dataset("cifar10", "test", tmp_path / "cifar-10-batches-py")
    assert len(ds) == 6


def test_missing_and_corrupt(tmp_path) -> None:
    with pytest.raises(DataError, match="no CIFAR-10 batches"):
        load_dataset("cifar10", "train", tmp_path)
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("cifar10", "train")
    write_cifar_python(tmp_path)
    f = tmp_path / "cifar-10-batches-py" / "test_batch"
    f.write_bytes(f.read_bytes()[:500])
    with pytest.raises(DataError, match="truncated|malformed"):
        load_dataset("cifar10", "test", tmp_path)


def test_binary_size_checked(tmp_path) -> None:
    write_cifar_binary(tmp_path)
    f = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    f.write_bytes(f.read_bytes()[:-1])
    with pytest.raises(DataError, match="multiple of 3073"):
        load_dataset("cifar10", "test", tmp_path)
