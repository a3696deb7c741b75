"""GTSRB (Stallkamp et al., IJCNN 2011) from a user-supplied folder in the official layout.

Training: ``GTSRB/Final_Training/Images/<class:05d>/*.ppm`` with ``GT-<class:05d>.csv``.
Test: ``GTSRB/Final_Test/Images/*.ppm`` with the ground-truth ``GT-final_test.csv``
(from ``GTSRB_Final_Test_GT.zip``, placed in the root, in ``GTSRB/`` or beside the test
images). CSV columns: ``Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId``.
Each image is cropped to its region of interest and resized to 32x32 (bilinear,
antialiased). ``root`` may be the folder that contains ``GTSRB/`` or ``GTSRB/`` itself.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from advparams.data.base import DATASETS, DatasetSpec, ImageDataset
from advparams.errors import DataError
from advparams.files import LIMITS, read_file

SIZE = 32
MAX_SIDE = 4096  # largest image side read (the official images are at most 250 pixels)
# An image named in an annotation file: a plain file name in the same folder (no path).
_FILENAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\.ppm")
NUM_CLASSES = 43
# Per-channel statistics commonly used for GTSRB (approximate; only used to normalise).
MEAN = (0.3403, 0.3121, 0.3214)
STD = (0.2724, 0.2608, 0.2669)


def read_ppm(path: Path) -> np.ndarray:
    """Reads a binary PPM (P6, 8-bit) image into ``[H, W, 3]`` uint8."""
    data = read_file(path, what="GTSRB image", limit=LIMITS["image"], error=DataError)
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if pos < len(data) and data[pos : pos + 1] == b"#":
            while pos < len(data) and data[pos : pos + 1] not in (b"\n", b"\r"):
                pos += 1
            continue
        start = pos
        while pos < len(data) and not data[pos : pos + 1].isspace():
            pos += 1
        if start == pos:
            raise DataError(f"{path} is not a PPM image (header)")
        tokens.append(data[start:pos])
    pos += 1  # the single whitespace after maxval
    if tokens[0] != b"P6":
        raise DataError(f"{path} is not a binary PPM image (magic {tokens[0][:2]!r})")
    try:
        w, h, maxval = int(tokens[1]), int(tokens[2]), int(tokens[3])
    except ValueError:
        raise DataError(f"{path} is not a PPM image (header)") from None
    if maxval != 255 or not 0 < w <= MAX_SIDE or not 0 < h <= MAX_SIDE:
        raise DataError(f"{path}: only 8-bit PPM images of at most {MAX_SIDE}x{MAX_SIDE} are supported")
    pixels = np.frombuffer(data, dtype=np.uint8, count=w * h * 3, offset=pos) if len(data) - pos >= w * h * 3 else None
    if pixels is None:
        raise DataError(f"{path} is truncated")
    return pixels.reshape(h, w, 3)


def _crop_resize(img: np.ndarray, roi: tuple[int, int, int, int]) -> torch.Tensor:
    x1, y1, x2, y2 = roi
    h, w = img.shape[:2]
    x1, y1 = max(0, min(x1, w - 1)), max(0, min(y1, h - 1))
    x2, y2 = max(x1 + 1, min(x2 + 1, w)), max(y1 + 1, min(y2 + 1, h))
    t = torch.from_numpy(np.ascontiguousarray(img[y1:y2, x1:x2])).permute(2, 0, 1).float().unsqueeze(0)
    out = F.interpolate(t, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)[0]


def _read_csv(path: Path) -> list[dict[str, str]]:
    raw = read_file(path, what="GTSRB annotation file", limit=LIMITS["gtsrb-csv"], error=DataError)
    try:
        text = raw.decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path} is not a GTSRB annotation file ({type(exc).__name__})") from None
    need = {"Filename", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"}
    if not rows or not need <= set(rows[0]):
        raise DataError(f"{path} is not a GTSRB annotation file (needs columns {', '.join(sorted(need))})")
    return rows


def _load_rows(rows: list[dict[str, str]], folder: Path, csv_path: Path) -> tuple[list[torch.Tensor], list[int]]:
    images, labels = [], []
    for i, row in enumerate(rows):
        try:
            roi = tuple(_small_int(row[f"Roi.{c}"]) for c in ("X1", "Y1", "X2", "Y2"))
            label = _small_int(row["ClassId"])
        except (TypeError, ValueError, KeyError):
            raise DataError(f"{csv_path}: row {i + 2} is not a GTSRB annotation") from None
        if not 0 <= label < NUM_CLASSES:
            raise DataError(f"{csv_path}: class {label} outside [0, {NUM_CLASSES})")
        name = row.get("Filename")
        if not isinstance(name, str) or not _FILENAME.fullmatch(name):
            raise DataError(f"{csv_path}: row {i + 2} names {str(name)[:60]!r}, not an image file beside it")
        images.append(_crop_resize(read_ppm(folder / name), roi))  # type: ignore[arg-type]
        labels.append(label)
    return images, labels


def _small_int(text: str | None) -> int:
    if text is None or len(text) > 9:
        raise ValueError("not a small integer")
    return int(text)


def _base(root: Path) -> Path:
    for d in (root / "GTSRB", root):
        if (d / "Final_Training").is_dir() or (d / "Final_Test").is_dir():
            return d
    raise DataError(f"no GTSRB data in {root}: expected GTSRB/Final_Training and GTSRB/Final_Test")


def load(split: str, root: Path | None) -> ImageDataset:
    """Loads the ``split`` of GTSRB from ``root``."""
    if root is None:
        raise DataError("GTSRB needs --data-dir")
    base = _base(root)
    images: list[torch.Tensor] = []
    labels: list[int] = []
    if split == "train":
        train = base / "Final_Training" / "Images"
        class_dirs = sorted(p for p in train.glob("[0-9]" * 5) if p.is_dir()) if train.is_dir() else []
        if not class_dirs:
            raise DataError(f"no class folders in {train}")
        for d in class_dirs:
            csv_path = d / f"GT-{d.name}.csv"
            im, lb = _load_rows(_read_csv(csv_path), d, csv_path)
            images += im
            labels += lb
    else:
        test = base / "Final_Test" / "Images"
        candidates = [root / "GT-final_test.csv", base / "GT-final_test.csv", test / "GT-final_test.csv"]
        test_csv = next((c for c in candidates if c.is_file()), None)
        if test_csv is None:
            raise DataError(
                "GTSRB test labels GT-final_test.csv not found (from GTSRB_Final_Test_GT.zip); "
                f"looked in {', '.join(str(c.parent) for c in candidates)}"
            )
        images, labels = _load_rows(_read_csv(test_csv), test, test_csv)
    return ImageDataset(
        torch.stack(images), torch.tensor(labels), mean=MEAN, std=STD, num_classes=NUM_CLASSES, name="gtsrb"
    )


DATASETS.register("gtsrb")(
    DatasetSpec(
        name="gtsrb",
        num_classes=NUM_CLASSES,
        in_channels=3,
        input_size=SIZE,
        loader=load,
        needs_root=True,
        description="GTSRB traffic signs, resized to 32x32 colour, 43 classes (official layout in --data-dir)",
    )
)
