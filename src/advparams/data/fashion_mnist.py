"""Fashion-MNIST (Xiao, Rasul & Vollgraf, arXiv 1708.07747, 2017) from its four IDX files.

Search order: ``--data-dir`` when given (and nothing else); otherwise ``$ADVPARAMS_DATA``
(the folder itself or its ``fashion-mnist/`` sub-folder), Debian's
``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``), the user cache
(``~/.cache/advparams/fashion-mnist``), and finally a download from the official source
into that cache, unless ``ADVPARAMS_OFFLINE=1``.
"""

from __future__ import annotations

import logging
import math
import os
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import torch

from advparams.data.base import DATASETS, DatasetSpec, ImageDataset
from advparams.errors import DataError
from advparams.files import LIMITS, atomic_write_bytes, read_file

log = logging.getLogger(__name__)

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
COUNTS = {"train": 60000, "test": 10000}
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
MEAN, STD = (0.2860,), (0.3530,)
HOW_TO_GET = (
    "install Debian's package (apt-get install dataset-fashion-mnist), or put the four IDX "
    ".gz files from https://github.com/zalandoresearch/fashion-mnist in a folder and set "
    "ADVPARAMS_DATA to it (or pass --data-dir)"
)

_IDX_DTYPES: dict[int, object] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(data: bytes, *, what: str = "IDX file") -> np.ndarray:
    """Parses an (uncompressed) IDX file into an array, checking its header and size."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{what} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{what} is truncated (header)")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_DTYPES[data[2]])  # type: ignore[call-overload]
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{what} has {len(data)} bytes, expected {expected}: truncated or corrupt")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def gunzip_bounded(data: bytes, *, what: str, limit: int = LIMITS["idx"]) -> bytes:
    """Decompresses gzip ``data``, refusing output larger than ``limit`` (a gzip bomb) as
    soon as it is passed; works in 4 MiB steps so that no more than the limit is held."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = bytearray()
    pending = data
    try:
        while True:
            out += d.decompress(pending, 4 << 20)
            if len(out) > limit:
                raise DataError(f"{what} decompresses to more than {limit} bytes: not a Fashion-MNIST file")
            pending = d.unconsumed_tail
            if d.eof or not pending:
                break
    except zlib.error as exc:
        raise DataError(f"{what} is not a valid gzip file ({exc})") from None
    if not d.eof:
        raise DataError(f"{what} is a truncated gzip file")
    return bytes(out)


def read_idx_gz(path: Path) -> np.ndarray:
    """Reads a gzip-compressed IDX file (bounded: see ``LIMITS`` in :mod:`advparams.files`)."""
    raw = read_file(path, what="IDX file", limit=LIMITS["idx-gz"], error=DataError)
    return parse_idx(gunzip_bounded(raw, what=str(path)), what=str(path))


def candidate_dirs(root: Path | None) -> list[Path]:
    """Folders searched for the IDX files, in order."""
    if root is not None:
        return [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
    dirs: list[Path] = []
    env = os.environ.get("ADVPARAMS_DATA")
    if env:
        if not Path(env).is_dir():
            raise DataError(f"ADVPARAMS_DATA is {env[:200]}, which is not a folder: point it at the folder that "
                            "holds Fashion-MNIST's IDX files, or unset it")  # fmt: skip
        dirs += [Path(env), Path(env) / "fashion-mnist"]
    dirs += [SYSTEM_DIR, cache_dir()]
    return dirs


def cache_dir() -> Path:
    """Where downloads go: ``$XDG_CACHE_HOME/advparams/fashion-mnist`` (default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "advparams" / "fashion-mnist"


def find_dir(split: str, root: Path | None) -> Path | None:
    """The first candidate folder that holds both files of ``split``."""
    dirs = candidate_dirs(root)
    for d in dirs:
        if all((d / f).is_file() for f in FILES[split]):
            env = os.environ.get("ADVPARAMS_DATA")
            if root is None and env and d not in (Path(env), Path(env) / "fashion-mnist"):
                log.warning("ADVPARAMS_DATA (%s) holds no Fashion-MNIST %s files; using %s", env, split, d)
            return d
    return None


def download(split: str, dest: Path) -> None:
    """Downloads the two files of ``split`` into ``dest`` (atomically, validating them)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES[split]:
        log.info("downloading %s%s", URL, name)
        with urllib.request.urlopen(URL + name, timeout=30) as resp:  # noqa: S310 (fixed https/http URL)
            payload = resp.read()
        parse_idx(gunzip_bounded(payload, what=name), what=name)
        atomic_write_bytes(dest / name, payload, force=True)


def load(split: str, root: Path | None) -> ImageDataset:
    """Loads the ``split`` of Fashion-MNIST (see the module docstring for where from)."""
    found = find_dir(split, root)
    if found is None:
        searched = ", ".join(str(d) for d in candidate_dirs(root))
        offline = root is not None or os.environ.get("ADVPARAMS_OFFLINE") == "1"
        if offline:
            raise DataError(f"Fashion-MNIST {split} files not found (searched {searched}); {HOW_TO_GET}")
        try:
            download(split, cache_dir())
        except Exception as exc:  # noqa: BLE001  (any network failure means the same to the user)
            raise DataError(
                f"Fashion-MNIST {split} files not found (searched {searched}) and the download "
                f"failed ({type(exc).__name__}); {HOW_TO_GET}"
            ) from None
        found = cache_dir()
    img_file, lbl_file = FILES[split]
    images = read_idx_gz(found / img_file)
    labels = read_idx_gz(found / lbl_file)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(f"Fashion-MNIST files in {found} have inconsistent shapes {images.shape}, {labels.shape}")
    if root is None and images.shape[0] != COUNTS[split]:
        raise DataError(f"Fashion-MNIST {split} in {found} has {images.shape[0]} images, expected {COUNTS[split]}")
    x = torch.from_numpy(images.astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    log.info("Fashion-MNIST %s: %d images from %s", split, len(y), found)
    return ImageDataset(x, y, mean=MEAN, std=STD, num_classes=10, name="fashion-mnist")


DATASETS.register("fashion-mnist")(
    DatasetSpec(
        name="fashion-mnist",
        num_classes=10,
        in_channels=1,
        input_size=28,
        loader=load,
        needs_root=False,
        description="Fashion-MNIST, 28x28 grey, 10 classes (found on the machine or downloaded)",
    )
)
