"""Verbs applied to checkpoints on disk: the library behind each command.

Each function opens its inputs (checkpoint, key, data set), checks its outputs before
any work (never over an input, never over a file it did not make unless ``force``),
runs the verb, and writes atomically; a locked model is never written without its key
(:func:`advparams.locked.save_locked`). The command line parses, calls one of these and
prints; the demo and the evaluation's studies call the same functions, so a training
subset, a data split or a locked model's files are made one way everywhere.

Example:
    >>> import tempfile
    >>> from advparams.training import TrainConfig
    >>> from advparams.usecases import lock_checkpoint, train_checkpoint, unlock_checkpoint
    >>> with tempfile.TemporaryDirectory() as d:
    ...     trained = train_checkpoint("lenet", "synthetic", d + "/model", train=TrainConfig(epochs=1))
    ...     locked = lock_checkpoint(d + "/model", d + "/locked", d + "/key.safetensors",
    ...                              options={"max_params": 10}, allow_partial=True)
    ...     restored = unlock_checkpoint(d + "/locked", d + "/key.safetensors", d + "/restored")
    >>> restored.fingerprint == trained.fingerprint
    True
"""

from advparams.usecases.backdoors import Implanted, implant_checkpoint
from advparams.usecases.detect import Screened, screen_checkpoint
from advparams.usecases.locks import Locked, Unlocked, lock_checkpoint, unlock_checkpoint
from advparams.usecases.models import (
    Evaluated,
    Opened,
    Trained,
    checkpoint_dataset,
    distinct_paths,
    evaluate_checkpoint,
    open_checkpoint,
    train_checkpoint,
    training_subset,
)
from advparams.usecases.watermarks import Embedded, embed_checkpoint

__all__ = [
    "Embedded",
    "Evaluated",
    "Implanted",
    "Locked",
    "Opened",
    "Screened",
    "Trained",
    "Unlocked",
    "checkpoint_dataset",
    "distinct_paths",
    "embed_checkpoint",
    "evaluate_checkpoint",
    "implant_checkpoint",
    "lock_checkpoint",
    "open_checkpoint",
    "screen_checkpoint",
    "train_checkpoint",
    "training_subset",
    "unlock_checkpoint",
]
