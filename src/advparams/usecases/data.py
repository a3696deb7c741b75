"""The data a verb runs a checkpoint on: a data set the toolkit knows, or the user's own
(``--data``), brought to what the model takes and checked to fit it; the fixed training
subset of ``train --train-samples`` and of the evaluation."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from advparams.checkpoint import Checkpoint
from advparams.data import DATASETS, DataLike, ImageDataset, load_dataset
from advparams.data.base import gather, num_examples
from advparams.errors import ConfigError, DataError

SUBSET_SEED = 0
"""The seed of the permutation a training subset is cut from: one fixed subset of a data
set for every training seed, in ``advparams train --train-samples`` as in an evaluation's
``train_samples`` (models of different seeds differ by their seed alone, not their data)."""


def training_subset(data: ImageDataset, samples: int | None) -> ImageDataset:
    """The first ``samples`` of a fixed permutation of ``data`` (:data:`SUBSET_SEED`); all
    of it when ``samples`` is ``None`` or not smaller."""
    if samples is None or samples >= len(data):
        return data
    g = torch.Generator().manual_seed(SUBSET_SEED)
    return data.subset(torch.randperm(len(data), generator=g)[:samples])


def checkpoint_dataset(meta: Mapping[str, Any], dataset: str | None = None) -> str:
    """The data set a command runs on: ``dataset`` if given, else the one the checkpoint
    was trained on.

    Raises:
        ConfigError: neither names one; UnknownNameError: it is not registered.
    """
    name = dataset or meta.get("dataset")
    if not name:
        raise ConfigError("the checkpoint names no data set: pass --dataset")
    DATASETS.get(str(name))
    return str(name)


HELD_OUT = 0.2
"""The share of the user's own data (``--data``) held out for evaluation; the rest is the
lock's (inferred: the papers lock with the owner's training data and measure on a test
split; one file is split so that the two never overlap)."""

SPLITS = ("train", "test")


def checkpoint_data(
    ckpt: Checkpoint,
    split: str,
    *,
    dataset: str | None = None,
    data: str | os.PathLike[str] | None = None,
    data_dir: str | None = None,
    max_length: int | None = None,
) -> tuple[str, DataLike]:
    """The ``split`` ("train" or "test") a verb runs ``ckpt`` on, and its name
    (:func:`checkpoint_splits` with one split)."""
    name, (loaded,) = checkpoint_splits(ckpt, (split,), dataset=dataset, data=data, data_dir=data_dir,
                                        max_length=max_length)  # fmt: skip
    return name, loaded


def checkpoint_splits(
    ckpt: Checkpoint,
    splits: tuple[str, ...],
    *,
    dataset: str | None = None,
    data: str | os.PathLike[str] | None = None,
    data_dir: str | None = None,
    max_length: int | None = None,
) -> tuple[str, list[DataLike]]:
    """The ``splits`` ("train", "test") a verb runs ``ckpt`` on, in that order, and their
    name; the user's own ``data`` is read once for all of them.

    Args:
        dataset: a registered data set (default: the checkpoint's own); images of a
            Hugging Face model pass through its folder's image processor.
        data: the user's own data instead: a folder of images by class, or a JSONL / CSV
            of text and label (read with a Hugging Face folder's tokenizer); its
            :data:`HELD_OUT` share is the "test" split, the rest "train" (a fixed split).
        max_length: tokens per text at most (default: the model's positions, at most 512).

    Raises:
        ConfigError / DataError: no data named, data that does not fit the model.
    """
    if any(split not in SPLITS for split in splits):
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}")
    if data is not None:
        full = own_data(ckpt, Path(data), max_length)
        return str(data), [_split(full, split) for split in splits]
    config = ckpt.meta.get("config", {})
    from advparams.huggingface.folder import is_language_model

    reads_text = ckpt.is_huggingface and "num_channels" not in config
    if reads_text and not is_language_model(config):
        # a text classifier reads its own tokenizer's ids, which no registered data set holds
        raise ConfigError(
            f"{ckpt.architecture} reads text: give your data with --data (a JSONL or CSV of text and label)"
        )
    if reads_text and (dataset is None or dataset not in DATASETS or DATASETS.get(dataset).vocab_size is None):
        raise ConfigError(
            f"{ckpt.architecture} is a language model: name a registered token data set whose ids it reads "
            "with --dataset (for example python-stdlib)"
        )
    name = checkpoint_dataset(ckpt.meta, dataset)
    out: list[DataLike] = []
    for split in splits:
        loaded = load_dataset(name, split, data_dir)
        if ckpt.is_huggingface and not reads_text:
            from advparams.huggingface.data import prepare_images, processor_of

            loaded = prepare_images(loaded, config, processor_of(ckpt.meta["folder"]))
        ckpt.check_fits(loaded)
        out.append(loaded)
    return name, out


def own_data(ckpt: Checkpoint, path: Path, max_length: int | None = None) -> DataLike:
    """All of the user's own data at ``path``, as ``ckpt``'s model takes it."""
    config: dict[str, Any] = ckpt.meta.get("config", {})
    if path.is_dir():
        from advparams.data.folder import read_image_folder

        args = ckpt.arguments
        if "in_channels" not in args or "input_size" not in args:
            raise ConfigError(f"{ckpt.architecture} does not say which images it takes")
        names = config.get("label2id") if isinstance(config.get("label2id"), dict) else None
        images = read_image_folder(path, channels=args["in_channels"], size=args["input_size"], class_ids=names)
        if ckpt.is_huggingface:
            from advparams.huggingface.data import prepare_images, processor_of

            images = prepare_images(images, config, processor_of(ckpt.meta["folder"]))
        ckpt.check_fits(images)
        return images
    if not ckpt.is_huggingface or "num_channels" in config:
        raise DataError(f"{path}: a file of texts is read only for a Hugging Face text model")
    from advparams.huggingface.data import MAX_LENGTH, label_ids, read_texts, tokenize

    texts, labels = read_texts(path)
    positions = config.get("max_position_embeddings")
    longest = min(MAX_LENGTH, positions if isinstance(positions, int) and positions > 0 else MAX_LENGTH)
    if max_length is not None:
        longest = min(longest, max_length)
    return tokenize(ckpt.meta["folder"], texts, longest), label_ids(labels, config, str(path))


def _split(full: DataLike, split: str) -> DataLike:
    n = num_examples(full)
    if n < 2:
        raise DataError(f"the data hold {n} sample: at least 2 are needed (one to lock with, one to measure)")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SUBSET_SEED))
    cut = n - max(1, round(n * HELD_OUT))
    idx = order[:cut] if split == "train" else order[cut:]
    if isinstance(full, ImageDataset):
        return full.subset(idx)
    return gather(full, idx)


__all__ = [
    "HELD_OUT",
    "SUBSET_SEED",
    "checkpoint_data",
    "checkpoint_splits",
    "checkpoint_dataset",
    "own_data",
    "training_subset",
]
