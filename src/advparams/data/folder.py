"""The user's own images: a folder with one sub-folder of images per class.

``ROOT/<class name>/*.{png,jpg,jpeg,bmp,ppm,webp}``; classes are the sub-folders' names
in sorted order (or, given ``class_ids``, the model's own label names). Every image is read
with Pillow as a regular file within the image size limit, converted to grey or RGB and
resized to one size (bilinear, antialiased). Normalisation is left to the model's own
preprocessing (:func:`advparams.huggingface.data.prepare_images`); the mean and standard
deviation kept here are those of the images themselves.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from advparams.data.base import ImageDataset
from advparams.errors import DataError
from advparams.files import LIMITS, read_file

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp")
MAX_IMAGES = 1_000_000
MAX_CLASSES = 100_000
MAX_PIXELS = 4096 * 4096


def read_image_folder(
    root: str | os.PathLike[str],
    *,
    channels: int,
    size: int,
    class_ids: Mapping[str, int] | None = None,
) -> ImageDataset:
    """Reads ``root``'s images by class, ``channels`` (1 or 3) each, ``size`` x ``size``.

    Raises:
        DataError: no class folders, an empty class, a class the model does not know, an
            unreadable or oversized image.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(root)
    if not p.is_dir():
        raise DataError(f"{p} is not a folder of images by class")
    classes = sorted(d.name for d in p.iterdir() if d.is_dir() and not d.is_symlink() and not d.name.startswith("."))
    if not classes or len(classes) > MAX_CLASSES:
        raise DataError(f"{p} holds no class folders (ROOT/<class>/<image>)")
    ids = dict(class_ids) if class_ids else {name: i for i, name in enumerate(classes)}
    images: list[torch.Tensor] = []
    labels: list[int] = []
    for name in classes:
        if name not in ids:
            raise DataError(f"{p}: class folder {name!r} is not one of the model's labels ({', '.join(list(ids)[:5])})")
        files = sorted(f for f in (p / name).iterdir() if f.suffix.lower() in SUFFIXES and not f.name.startswith("."))
        if not files:
            raise DataError(f"{p / name} holds no images ({', '.join(SUFFIXES)})")
        for f in files:
            if len(images) >= MAX_IMAGES:
                raise DataError(f"{p} holds more than {MAX_IMAGES} images")
            data = read_file(f, what="image", limit=LIMITS["image"], error=DataError)
            try:
                with Image.open(io.BytesIO(data)) as img:
                    if img.width * img.height > MAX_PIXELS:
                        raise DataError(f"{f} is larger than {MAX_PIXELS} pixels")
                    pixels = np.asarray(img.convert("L" if channels == 1 else "RGB"))
            except (UnidentifiedImageError, OSError, ValueError):
                raise DataError(f"{f} is not an image Pillow can read") from None
            t = torch.from_numpy(pixels.copy()).reshape(pixels.shape[0], pixels.shape[1], -1).permute(2, 0, 1)
            if tuple(t.shape[1:]) != (size, size):
                t = F.interpolate(t[None].float(), size=(size, size), mode="bilinear", antialias=True)[0]
                t = t.round().clamp(0, 255).to(torch.uint8)
            images.append(t)
            labels.append(ids[name])
    stack = torch.stack(images)
    scaled = stack.float() / 255
    mean = scaled.mean(dim=(0, 2, 3)).tolist()
    std = [max(s, 1e-3) for s in scaled.std(dim=(0, 2, 3)).tolist()] if len(images) > 1 else [1.0] * channels
    num_classes = max(ids.values()) + 1
    return ImageDataset(stack, torch.tensor(labels), mean=mean, std=std, num_classes=num_classes, name=p.name)


__all__ = ["read_image_folder"]
