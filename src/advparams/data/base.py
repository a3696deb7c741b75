"""In-memory image data sets and the batch helpers every part of the toolkit uses.

Library functions accept any ``torch.utils.data.Dataset`` that yields ``(x, y)`` pairs,
or a pair of tensors ``(x, y)``. :class:`ImageDataset` (uint8 images kept in memory,
normalised on access) gets a fast path that slices whole batches at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from advparams.errors import DataError
from advparams.registry import Registry

DataLike = Dataset | tuple[torch.Tensor, torch.Tensor]


class InMemoryDataset(Dataset):
    """A data set held in memory as two tensors, inputs and integer labels, which every
    batch helper slices whole batches from: :class:`ImageDataset` (images) and
    :class:`TokenDataset` (token ids).

    Attributes:
        labels: integer tensor ``[N]`` in ``[0, num_classes)``.
        num_classes: number of classes.
        name: data set name, for messages and records.
    """

    labels: torch.Tensor
    num_classes: int
    name: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def tensors(self, indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Model inputs and labels, all of them or those at ``indices``."""
        raise NotImplementedError

    def subset(self, indices: torch.Tensor) -> InMemoryDataset:
        """A new data set holding the samples at ``indices``."""
        raise NotImplementedError


def _check_labels(labels: torch.Tensor, count: int, num_classes: int, name: str, what: str) -> None:
    if labels.dim() != 1 or labels.shape[0] != count:
        raise DataError(f"{name}: {count} {what} but {labels.shape[0]} labels")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        got = f"[{int(labels.min())}, {int(labels.max())}]"
        raise DataError(f"{name}: labels must lie in [0, {num_classes}), got {got}")


class TokenDataset(InMemoryDataset):
    """Token ids ``[N, L]`` (int64, padded with ``pad_id`` on the right) with integer labels.

    Args:
        ids: integer tensor ``[N, L]``.
        labels: integer tensor ``[N]`` in ``[0, num_classes)``.
        num_classes: number of classes.
        vocab_size: ids lie in ``[0, vocab_size)``.
        pad_id: the padding id.
        name: data set name, for messages and records.
    """

    def __init__(
        self,
        ids: torch.Tensor,
        labels: torch.Tensor,
        *,
        num_classes: int,
        vocab_size: int,
        pad_id: int = 0,
        name: str = "dataset",
    ) -> None:
        if ids.is_floating_point() or ids.dim() != 2:
            raise DataError(f"{name}: token ids must be an integer tensor [N, L], got {ids.dtype} {tuple(ids.shape)}")
        _check_labels(labels, int(ids.shape[0]), num_classes, name, "texts")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
            raise DataError(f"{name}: token ids must lie in [0, {vocab_size})")
        self.ids = ids.long()
        self.labels = labels.long()
        self.num_classes = int(num_classes)
        self.vocab_size = int(vocab_size)
        self.pad_id = int(pad_id)
        self.name = name

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.ids[index], int(self.labels[index])

    def tensors(self, indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and labels, all of them or those at ``indices``."""
        if indices is None:
            return self.ids, self.labels
        return self.ids[indices], self.labels[indices]

    def subset(self, indices: torch.Tensor) -> TokenDataset:
        """A new data set holding the samples at ``indices``."""
        return TokenDataset(
            self.ids[indices],
            self.labels[indices],
            num_classes=self.num_classes,
            vocab_size=self.vocab_size,
            pad_id=self.pad_id,
            name=self.name,
        )


class ImageDataset(InMemoryDataset):
    """uint8 images ``[N, C, H, W]`` with integer labels, normalised on access.

    Args:
        images: uint8 tensor ``[N, C, H, W]``.
        labels: integer tensor ``[N]`` in ``[0, num_classes)``.
        mean: per-channel mean of the [0, 1]-scaled images, used for normalisation.
        std: per-channel standard deviation, likewise.
        num_classes: number of classes.
        name: data set name, for messages and records.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        num_classes: int,
        name: str = "dataset",
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise DataError(
                f"{name}: images must be a uint8 tensor [N, C, H, W], got {images.dtype} {tuple(images.shape)}"
            )
        _check_labels(labels, int(images.shape[0]), num_classes, name, "images")
        if len(mean) != images.shape[1] or len(std) != images.shape[1]:
            raise DataError(f"{name}: mean/std need one value per channel ({images.shape[1]})")
        self.images = images
        self.labels = labels.long()
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.num_classes = int(num_classes)
        self.name = name

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1) if x.dim() == 4 else (-1, 1, 1)
        mean = torch.tensor(self.mean).view(shape)
        std = torch.tensor(self.std).view(shape)
        return (x.float() / 255.0 - mean) / std

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self._normalise(self.images[index]), int(self.labels[index])

    def tensors(self, indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float images and labels, all of them or those at ``indices``."""
        if indices is None:
            return self._normalise(self.images), self.labels
        return self._normalise(self.images[indices]), self.labels[indices]

    def subset(self, indices: torch.Tensor) -> ImageDataset:
        """A new data set holding the samples at ``indices``."""
        return ImageDataset(
            self.images[indices],
            self.labels[indices],
            mean=self.mean,
            std=self.std,
            num_classes=self.num_classes,
            name=self.name,
        )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one sample."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)


def num_examples(data: DataLike) -> int:
    """Number of samples in ``data``."""
    if isinstance(data, tuple):
        return int(data[0].shape[0])
    return len(data)  # type: ignore[arg-type]


def _to_label_tensor(y: object) -> torch.Tensor:
    return y if isinstance(y, torch.Tensor) else torch.as_tensor(y)


def iter_batches(
    data: DataLike,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yields ``(x, y)`` batches of ``data``; shuffled with ``generator`` when asked."""
    n = num_examples(data)
    if isinstance(data, (tuple, InMemoryDataset)):
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if isinstance(data, InMemoryDataset):
                yield data.tensors(idx)
            else:
                yield data[0][idx], data[1][idx]
        return
    loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)
    for x, y in loader:
        yield x, _to_label_tensor(y).long()


def gather(data: DataLike, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples at ``indices`` as two stacked tensors ``(x, y)``."""
    if isinstance(data, InMemoryDataset):
        return data.tensors(indices)
    if isinstance(data, tuple):
        return data[0][indices], data[1][indices]
    xs, ys = zip(*(data[int(i)] for i in indices), strict=True)
    return torch.stack([torch.as_tensor(x) for x in xs]), torch.stack([_to_label_tensor(y) for y in ys]).long()


def all_labels(data: DataLike) -> torch.Tensor:
    """Every label of ``data`` as one tensor (reads the whole data set if it must)."""
    if isinstance(data, InMemoryDataset):
        return data.labels
    if isinstance(data, tuple):
        return data[1].long()
    return torch.stack([_to_label_tensor(data[i][1]) for i in range(len(data))]).long()  # type: ignore[arg-type]


def normalisation(data: DataLike, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(mean, std)`` as ``[C, 1, 1]`` tensors: an :class:`ImageDataset`'s own,
    or 0 and 1 for other data (its inputs are taken as [0, 1] pixels)."""
    if isinstance(data, ImageDataset):
        return torch.tensor(data.mean).view(-1, 1, 1), torch.tensor(data.std).view(-1, 1, 1)
    return torch.zeros(channels, 1, 1), torch.ones(channels, 1, 1)


def balanced_indices(labels: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of ``n`` samples drawn as evenly across classes as the data allows.

    Classes are visited round-robin in a random order; within a class samples are taken
    in a random order, so the choice depends only on ``generator``.
    """
    total = int(labels.shape[0])
    if n >= total:
        return torch.randperm(total, generator=generator)
    perm = torch.randperm(total, generator=generator)
    shuffled = labels[perm]
    classes = torch.unique(shuffled)
    per_class = [perm[shuffled == c] for c in classes]
    rank = torch.cat([torch.arange(len(p)) for p in per_class])
    pool = torch.cat(per_class)
    cls_pos = torch.cat([torch.full((len(p),), i) for i, p in enumerate(per_class)])
    order = torch.argsort(rank * len(per_class) + cls_pos, stable=True)
    return pool[order[:n]]


@dataclass(frozen=True)
class DatasetSpec:
    """What the toolkit knows about a registered data set.

    Attributes:
        name: registry name.
        num_classes: number of classes.
        in_channels: image channels.
        input_size: image side in pixels (images are square).
        loader: ``loader(split, root)``: an :class:`ImageDataset`, or a
            :class:`TokenDataset` for a text data set.
        needs_root: True when the user must name the folder that holds the files.
        description: one line for ``--help`` and listings.
        vocab_size: a text data set's token ids lie in ``[0, vocab_size)`` (``None``
            for images); passed to model factories as ``vocab_size``. A text data set's
            ``in_channels`` is 1 and its ``input_size`` the number of tokens per text.
        task: what its models do (:mod:`advparams.tasks`): ``"classification"``, or
            ``"causal-lm"`` (next-token prediction; ``num_classes`` is then the vocabulary).
    """

    name: str
    num_classes: int
    in_channels: int
    input_size: int
    loader: Callable[[str, Path | None], ImageDataset]
    needs_root: bool
    description: str
    vocab_size: int | None = None
    task: str = "classification"

    def example(self, n: int, device: str | torch.device = "cpu") -> torch.Tensor:
        """``n`` zero inputs of this data set's shape: images ``[n, C, H, W]`` (float) or,
        for a text data set, token ids ``[n, input_size]`` (int64)."""
        if self.vocab_size is not None:
            return torch.zeros(n, self.input_size, dtype=torch.long, device=device)
        return torch.zeros(n, self.in_channels, self.input_size, self.input_size, device=device)

    @property
    def shape_text(self) -> str:
        """One sample's shape for messages: ``1x28x28`` or ``24 tokens``."""
        if self.vocab_size is not None:
            return f"{self.input_size} tokens"
        return f"{self.in_channels}x{self.input_size}x{self.input_size}"

    @property
    def model_options(self) -> dict[str, int]:
        """The options a registered model factory needs to fit this data set."""
        shape = {"num_classes": self.num_classes, "in_channels": self.in_channels, "input_size": self.input_size}
        return shape if self.vocab_size is None else {**shape, "vocab_size": self.vocab_size}


DATASETS: Registry[DatasetSpec] = Registry("dataset")
"""Every data set by name (each module of :mod:`advparams.data` registers its own)."""
