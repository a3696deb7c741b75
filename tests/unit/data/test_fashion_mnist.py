import gzip

import numpy as np
import pytest
import torch

from advparams.data import load_dataset
from advparams.data.fashion_mnist import parse_idx
from advparams.errors import DataError

from .helpers import write_fashion_mnist


def test_reads_idx_files_exactly(tmp_path) -> None:
    written = write_fashion_mnist(tmp_path)
    ds = load_dataset("fashion-mnist", "test", tmp_path)
    x, y = written["test"]
    assert ds.images.shape == (10, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[:, 0], torch.from_numpy(x)) and torch.equal(ds.labels, torch.from_numpy(y).long())
    img, label = ds[3]
    assert label == 3 and img.dtype == torch.float32
    assert torch.allclose(img, (torch.from_numpy(x[3]).float() / 255 - 0.2860) / 0.3530)


def test_env_var_folder_is_searched(tmp_path, monkeypatch) -> None:
    write_fashion_mnist(tmp_path / "fashion-mnist")
    monkeypatch.setenv("ADVPARAMS_DATA", str(tmp_path))
    monkeypatch.setattr("advparams.data.fashion_mnist.SYSTEM_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match="expected 10000"):  # tiny files are found, then refused as not the real set
        load_dataset("fashion-mnist", "test")


def test_missing_files_say_how_to_get_them(tmp_path) -> None:
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", "train", tmp_path)


def test_offline_without_files(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("ADVPARAMS_DATA", raising=False)
    monkeypatch.setattr("advparams.data.fashion_mnist.SYSTEM_DIR", tmp_path / "absent")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="not found"):
        load_dataset("fashion-mnist", "train")


def test_truncated_and_bad_magic_files(tmp_path) -> None:
    write_fashion_mnist(tmp_path)
    f = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(f.read_bytes())
    f.write_bytes(gzip.compress(raw[:-5]))
    with pytest.raises(DataError, match="truncated"):
        load_dataset("fashion-mnist", "test", tmp_path)
    f.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a valid gzip"):
        load_dataset("fashion-mnist", "test", tmp_path)
    with pytest.raises(DataError, match="magic"):
        parse_idx(b"\x01\x02\x03\x04")


def test_parse_idx_shapes() -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    raw = bytes([0, 0, 8, 2]) + (3).to_bytes(4, "big") + (4).to_bytes(4, "big") + arr.tobytes()
    assert np.array_equal(parse_idx(raw), arr)
