import numpy as np
import pytest
import torch

from advparams.data import load_dataset
from advparams.data.gtsrb import read_ppm
from advparams.errors import DataError

from .helpers import write_gtsrb, write_ppm


def test_reads_official_layout(tmp_path) -> None:
    written = write_gtsrb(tmp_path)
    train = load_dataset("gtsrb", "train", tmp_path)
    test = load_dataset("gtsrb", "test", tmp_path)
    assert train.images.shape == (6, 3, 32, 32) and train.labels.tolist() == written["train"]
    assert test.labels.tolist() == written["test"] and train.num_classes == 43
    # A uniform image stays uniform after ROI crop and resize.
    assert torch.all(train.images[2] == 10)


def test_ppm_reader_exact(tmp_path) -> None:
    img = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    write_ppm(tmp_path / "a.ppm", img, comment=True)
    assert np.array_equal(read_ppm(tmp_path / "a.ppm"), img)
    (tmp_path / "b.ppm").write_bytes((tmp_path / "a.ppm").read_bytes()[:-4])
    with pytest.raises(DataError, match="truncated"):
        read_ppm(tmp_path / "b.ppm")
    (tmp_path / "c.ppm").write_bytes(b"P3\n1 1\n255\n0 0 0")
    with pytest.raises(DataError, match="binary PPM"):
        read_ppm(tmp_path / "c.ppm")


def test_missing_pieces(tmp_path) -> None:
    with pytest.raises(DataError, match="no GTSRB data"):
        load_dataset("gtsrb", "train", tmp_path)
    write_gtsrb(tmp_path)
    (tmp_path / "GT-final_test.csv").unlink()
    with pytest.raises(DataError, match="GT-final_test.csv not found"):
        load_dataset("gtsrb", "test", tmp_path)
