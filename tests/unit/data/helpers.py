"""Writers of tiny data files in the official formats (used by the data tests)."""

from __future__ import annotations

import gzip
import pickle  # tests write CIFAR-10's official pickled format; the library never unpickles
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    code = {np.uint8: 0x08}[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.tobytes())


def write_fashion_mnist(folder: Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
        out[split] = (x, y)
    return out


def write_cifar_python(folder: Path, n: int = 6, seed: int = 0) -> dict:
    """cifar-10-batches-py/ as the official archive has it (pickle protocol 2, bytes keys)."""
    rng = np.random.default_rng(seed)
    d = folder / "cifar-10-batches-py"
    d.mkdir(parents=True)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        (d / name).write_bytes(pickle.dumps(batch, protocol=2))
        out[name] = (data, labels)
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2))
    return out


def write_cifar_binary(folder: Path, n: int = 6, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    d = folder / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        (d / f"{name}.bin").write_bytes(np.concatenate([labels[:, None], data], axis=1).tobytes())
        out[name] = (data, labels)
    return out


def write_ppm(path: Path, img: np.ndarray, comment: bool = False) -> None:
    h, w, _ = img.shape
    head = b"P6\n" + (b"# made by a test\n" if comment else b"") + f"{w} {h}\n255\n".encode()
    path.write_bytes(head + img.tobytes())


def write_gtsrb(folder: Path, classes: tuple[int, ...] = (0, 1, 42), per_class: int = 2, seed: int = 0) -> dict:
    """GTSRB/Final_Training/Images/<cls>/ (+ GT-<cls>.csv) and Final_Test/Images + GT-final_test.csv."""
    rng = np.random.default_rng(seed)
    base = folder / "GTSRB"
    header = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
    train = []
    for c in classes:
        d = base / "Final_Training" / "Images" / f"{c:05d}"
        d.mkdir(parents=True)
        rows = []
        for i in range(per_class):
            h, w = int(rng.integers(30, 50)), int(rng.integers(30, 50))
            img = np.full((h, w, 3), 10 * c % 256, dtype=np.uint8)
            name = f"{i:05d}_{0:05d}.ppm"
            write_ppm(d / name, img, comment=i == 0)
            rows.append(f"{name};{w};{h};5;5;{w - 6};{h - 6};{c}\n")
            train.append(c)
        (d / f"GT-{c:05d}.csv").write_text(header + "".join(rows))
    t = base / "Final_Test" / "Images"
    t.mkdir(parents=True)
    rows, test = [], []
    for i, c in enumerate(classes):
        img = rng.integers(0, 256, size=(40, 36, 3), dtype=np.uint8)
        write_ppm(t / f"{i:05d}.ppm", img)
        rows.append(f"{i:05d}.ppm;36;40;5;5;30;34;{c}\n")
        test.append(c)
    (folder / "GT-final_test.csv").write_text(header + "".join(rows))
    return {"train": train, "test": test}
