"""Saving a locked model together with its key, in an order that never loses a key.

A locked model without its key is lost property, so :func:`save_locked` never writes one
without the other: the locked checkpoint is written complete to a hidden folder beside
its destination, the key is made in memory (sealed if asked), and then
:func:`advparams.files.install_folder_with_key` puts the key in place *before* the model
appears, keeping the previous pair in hidden backups while a ``force`` replacement is
under way. The key is checked to restore the original before anything is written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from advparams.checkpoint import Checkpoint, write_checkpoint
from advparams.errors import AdvParamsError, ConfigError
from advparams.files import (
    check_output,
    install_folder_with_key,
    is_paired_key,
    recover_interrupted_pair,
    resolve,
    staging_folder,
)
from advparams.fingerprint import fingerprint_like
from advparams.keys import Key, is_key_file, key_to_bytes, unlock
from advparams.keys.seal import Passphrase, seal

LOCK_COMMAND = "lock"
logger = logging.getLogger(__name__)


def check_locked_outputs(
    out: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    *,
    force: bool,
    source: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path]:
    """Checks, before any work, that a locked model may be written to ``out`` and its key
    to ``key_path``; returns both resolved.

    Raises:
        ConfigError: the paths coincide, one lies inside the other, or one is the source.
        OutputExistsError: as :func:`advparams.files.check_output`.
    """
    o, k = resolve(out), resolve(key_path)
    paths = [o, k] + ([resolve(source)] if source is not None else [])
    if len(set(paths)) != len(paths):
        raise ConfigError("the output paths must differ from each other and from the input")
    if o in k.parents:
        raise ConfigError(
            f"the key {k} must not lie inside the locked model's folder {o}: replacing one would lose the other"
        )
    if k in o.parents:
        raise ConfigError(f"the locked model {o} must not lie inside the key's path {k}")
    if source is not None and (resolve(source) in o.parents or resolve(source) in k.parents):
        raise ConfigError("the outputs must not lie inside the source checkpoint")
    done = recover_interrupted_pair(o, k)
    if done:
        logger.warning("%s", done)
    check_output(o, force=force, made_by=LOCK_COMMAND)
    check_output(k, force=force, accept=paired_with(o), what=f"the key of the locked model being replaced at {o}")
    return o, k


def paired_with(folder: Path) -> Callable[[Path], bool]:
    """What ``--force`` may replace at the key's path: only the key that the locked model
    being replaced at ``folder`` was written with; never another model's key, which may
    be the only one that unlocks it."""
    return lambda p: is_key_file(p) and is_paired_key(folder, p)


def save_locked(
    model: nn.Module,
    key: Key,
    out: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    arguments: dict[str, Any] | None = None,
    like: Checkpoint | None = None,
    dataset: str | None = None,
    record: dict[str, Any] | None = None,
    passphrase: Passphrase | None = None,
    force: bool = False,
) -> tuple[Path, Path]:
    """Writes locked ``model`` as a checkpoint at ``out`` and ``key`` at ``key_path``: a
    checkpoint of registered ``architecture`` built with ``arguments``, or the same kind
    of folder as ``like`` (a Hugging Face folder keeps its layout and files).

    With ``force`` an earlier ``lock`` output pair is replaced; a folder that ``lock``
    did not make, or a file that is not the key that folder was written with, is never
    replaced.

    Raises:
        KeyMismatchError: ``key`` does not unlock ``model``.
        AdvParamsError: the key does not restore its original.
        OutputExistsError / ConfigError: as :func:`check_locked_outputs`.
    """
    if like is None and (architecture is None or arguments is None):
        raise ConfigError("save_locked needs the architecture and its arguments, or a checkpoint to write like")
    o, k = check_locked_outputs(out, key_path, force=force)
    restored = unlock(model, key)  # checks the locked fingerprint
    if fingerprint_like(restored, key.original_fingerprint) != key.original_fingerprint:
        raise AdvParamsError("internal error: the key does not restore the original model")
    data = key_to_bytes(key)
    if passphrase is not None:
        data = seal(data, passphrase)
    with staging_folder(o, made_by=LOCK_COMMAND) as tmp:
        if like is not None:
            like.write(model, tmp, locked=True, dataset=dataset, record=record)
        else:
            write_checkpoint(model, tmp, architecture=str(architecture), arguments=dict(arguments or {}),
                             dataset=dataset, locked=True, record=record)  # fmt: skip
        install_folder_with_key(tmp, o, data, k, force=force, key_accept=paired_with(o))
    return o, k


__all__ = ["LOCK_COMMAND", "check_locked_outputs", "paired_with", "save_locked"]
