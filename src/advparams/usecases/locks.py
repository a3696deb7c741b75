"""Locking and unlocking checkpoints on disk: ``advparams lock`` and ``unlock``, the demo."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from advparams.checkpoint import load_checkpoint, save_like
from advparams.data import DataLike
from advparams.devices import resolve_device
from advparams.errors import ConfigError, KeyMismatchError, LockIncompleteError
from advparams.files import check_output, resolve
from advparams.huggingface.folder import is_hf_folder, read_state
from advparams.keys import Key, key_to_bytes, unlock
from advparams.keys.seal import Passphrase, seal
from advparams.locked import check_locked_outputs, save_locked
from advparams.metrics import accuracy
from advparams.schemes import SCHEMES, LockProgress, LockReport
from advparams.streaming import streams, unlock_folder
from advparams.tasks import CausalLM, task_of, task_quality
from advparams.usecases.data import checkpoint_data, checkpoint_splits
from advparams.usecases.models import Written

DEFAULT_SCHEME = "advparams"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Locked(Written):
    """What :func:`lock_checkpoint` did. It holds no key material: the key is in its file.

    Attributes:
        report: the scheme's report of the lock.
        problem: why the lock missed its target (``None``: it met it).
        accuracy_before, accuracy_locked: test accuracy of the original and the locked
            model (``None`` without ``evaluate``; a language model's next-token accuracy).
        perplexity: a language model's test perplexity before and locked, and the
            unigram bar it must reach (``None``: a classifier, or without ``evaluate``).
            For a language model the report's accuracies are levels, ``1 / perplexity``.
    """

    sealed: bool
    report: LockReport
    problem: str | None
    accuracy_before: float | None
    accuracy_locked: float | None
    seconds: float
    perplexity: tuple[float, float, float] | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary ``advparams lock --json`` prints."""
        rep = self.report
        return {
            "checkpoint": self.checkpoint,
            "out": str(self.out),
            "key": str(self.key),
            "sealed": self.sealed,
            "scheme": self.scheme,
            "dataset": self.dataset,
            "device": self.device,
            "accuracy_before": self.accuracy_before,
            "accuracy_locked": self.accuracy_locked,
            "lock_accuracy_before": rep.lock_accuracy_before,
            "lock_accuracy_after": rep.lock_accuracy_after,
            "target_accuracy": rep.target_accuracy,
            "params_changed": rep.params_changed,
            "params_total": rep.params_total,
            "proportion_percent": rep.proportion_percent,
            "stopped": rep.stopped,
            "target_met": rep.target_met,
            "partial": self.problem is not None,
            "lock_rounds": rep.rounds,
            "lock_forward_passes": rep.forward_passes,
            "lock_backward_passes": rep.backward_passes,
            "holdout_accuracy_after": rep.holdout_accuracy_after,
            "check_samples": rep.check_samples,
            "check_accuracy": rep.check_accuracy,
            "check_bound": rep.check_bound,
            "check_level": rep.check_level,
            "check_tries": rep.check_tries,
            "certified": rep.certified,
            "lock_seconds": rep.seconds,
            "seconds": self.seconds,
        } | self._perplexity()

    def _perplexity(self) -> dict[str, float]:
        if self.perplexity is None:
            return {}
        before, locked, bar = self.perplexity
        return {"perplexity_before": before, "perplexity_locked": locked, "perplexity_bar": bar}


def _missed(rep: LockReport, problem: str) -> LockIncompleteError:
    """The error of a lock that missed its target, with what to do about it."""
    if rep.lock_accuracy_before <= rep.target_accuracy:
        advice = "check the checkpoint and --dataset"
    elif rep.certified is False and rep.lock_accuracy_after <= rep.target_accuracy:
        advice = "give the search more lock samples (--set num_samples=N) or the check more (--set check_samples=N)"
    else:
        advice = "raise the budget (--set max_params=N) or lower the target"
    return LockIncompleteError(f"{problem}; nothing was written: {advice}, or accept it with --allow-partial")


def lock_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    key: str | os.PathLike[str],
    *,
    scheme: str = DEFAULT_SCHEME,
    options: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    data: str | os.PathLike[str] | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    evaluate: bool = True,
    allow_partial: bool = False,
    passphrase: Passphrase | None = None,
    force: bool = False,
    progress: Callable[[LockProgress], None] | None = None,
) -> Locked:
    """Locks the checkpoint folder ``checkpoint`` (an advparams checkpoint or a Hugging
    Face folder) with registered ``scheme`` and writes the locked model to ``out``, as the
    same kind of folder, and its key to ``key`` (sealed with ``passphrase`` if given), the
    key first (:func:`advparams.locked.save_locked`). The lock samples are the train split
    of ``dataset`` or of the user's own ``data`` (:func:`~advparams.usecases.data.checkpoint_data`).

    Both outputs are checked before the lock starts; a lock that misses its target
    writes nothing unless ``allow_partial``.

    Raises:
        LockIncompleteError: the target was missed and ``allow_partial`` is false.
        ConfigError: the checkpoint is already locked, or an option is wrong.
    """
    start = time.perf_counter()
    check_locked_outputs(out, key, force=force, source=checkpoint)
    built = SCHEMES.build(scheme, dict(options or {}))
    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, device=dev)
    if ckpt.meta.get("locked"):
        raise ConfigError(f"{checkpoint} is already locked")
    splits = ("train", "test") if evaluate else ("train",)
    name, loaded = checkpoint_splits(ckpt, splits, dataset=dataset, data=data, data_dir=data_dir)
    lock_data, test_data = loaded[0], (loaded[1] if evaluate else None)
    result = built.lock(ckpt.model, lock_data, progress=progress)
    rep = result.report
    problem = rep.problem(task_of(lock_data).level_name)
    if problem and not allow_partial:
        raise _missed(rep, problem)
    before = locked_acc = perplexity = None
    if test_data is not None:
        before, locked_acc, perplexity = test_quality(ckpt.model, result.model, test_data)
    record = {"lock": dataclasses.asdict(rep), "original_fingerprint": result.key.original_fingerprint,
              "source_checkpoint": str(checkpoint), "test_accuracy": locked_acc}  # fmt: skip
    written = ckpt.dataset if data else name
    streamed = ckpt.is_huggingface and _lock_files(ckpt, result, out, key, written, record, passphrase, force)
    if streamed:
        o, k = resolve(out), resolve(key)
    else:
        o, k = save_locked(result.model, result.key, out, key, like=ckpt, dataset=written,
                           record=record, passphrase=passphrase, force=force)  # fmt: skip
    return Locked(str(checkpoint), o, k, scheme, name, str(dev), passphrase is not None, rep, problem, before,
                  locked_acc, time.perf_counter() - start, perplexity)  # fmt: skip


def _lock_files(
    ckpt: Any,
    result: Any,
    out: str | os.PathLike[str],
    key: str | os.PathLike[str],
    dataset: str | None,
    record: dict[str, Any],
    passphrase: Passphrase | None,
    force: bool,
) -> bool:
    """Writes a Hugging Face folder's lock by streaming its files through the key
    (:func:`advparams.streaming.lock_folder`), the key with tensors fingerprints, checked
    to give exactly the locked model the scheme made; False where the folder's files are
    not the loaded model's tensors (weights renamed on load): then nothing was written."""
    from advparams.fingerprint import saved_tensors, tensors_fingerprint
    from advparams.streaming import lock_folder

    files_key = dataclasses.replace(
        result.key,
        original_fingerprint=tensors_fingerprint(saved_tensors(ckpt.model)),
        locked_fingerprint=tensors_fingerprint(saved_tensors(result.model)),
    )

    def key_bytes(made: Key) -> bytes:
        data = key_to_bytes(made)
        return data if passphrase is None else seal(data, passphrase)

    try:
        lock_folder(ckpt.meta["folder"], files_key, out, key, key_bytes=key_bytes, force=force, record=record,
                    dataset=dataset)  # fmt: skip
    except KeyMismatchError as exc:
        logger.warning("%s: written from the loaded model instead (%s)", ckpt.meta["folder"], exc)
        return False
    return True


def test_quality(
    original: nn.Module, locked: nn.Module, data: DataLike
) -> tuple[float, float, tuple[float, float, float] | None]:
    """Accuracy on ``data`` before and locked, and for a language model its perplexity
    before and locked and the unigram bar (None for a classifier)."""
    task = task_of(data)
    if not isinstance(task, CausalLM) or task.bar_nll is None:
        return accuracy(original, data), accuracy(locked, data), None
    q0, q1 = task_quality(original, data), task_quality(locked, data)
    return q0["accuracy"], q1["accuracy"], (q0["perplexity"], q1["perplexity"], math.exp(task.bar_nll))


@dataclass(frozen=True)
class Unlocked:
    """What :func:`unlock_checkpoint` did (the key's fingerprints are public, never its
    positions or values); ``model`` is the restored model, ``None`` where the folder was
    unlocked file to file without loading it."""

    locked: str
    out: Path
    model: nn.Module | None
    params_restored: int
    fingerprint: str
    user: str | None
    dataset: str | None
    accuracy_locked: float | None
    accuracy_unlocked: float | None
    seconds: float


def unlock_checkpoint(
    locked: str | os.PathLike[str],
    key: str | os.PathLike[str] | Key,
    out: str | os.PathLike[str],
    *,
    passphrase: Passphrase | None = None,
    evaluate: bool = False,
    dataset: str | None = None,
    data: str | os.PathLike[str] | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    force: bool = False,
) -> Unlocked:
    """Restores the locked checkpoint folder ``locked`` with ``key`` (a key file, sealed
    ones opened with ``passphrase``, or a loaded key) and writes the restored model to
    ``out``; with ``evaluate``, measures both on the test split.

    Raises:
        KeyMismatchError: the key is not this model's.
    """
    from advparams.keys import load_key

    start = time.perf_counter()
    if Path(out).resolve() == Path(locked).resolve():
        raise ConfigError("the output paths must differ from each other and from the input")
    check_output(out, force=force, made_by="unlock")
    opened = key if isinstance(key, Key) else load_key(key, passphrase=passphrase)
    user = opened.info.get("user")
    if not evaluate and is_hf_folder(locked) and streams(opened):  # file to file, nothing loaded
        unlock_folder(locked, opened, out, force=force)
        return Unlocked(str(locked), Path(out), None, opened.num_changed, opened.original_fingerprint,
                        None if user is None else str(user), dataset or read_state(Path(locked)).get("dataset"),
                        None, None, time.perf_counter() - start)  # fmt: skip
    ckpt = load_checkpoint(locked, device=resolve_device(device))
    restored = unlock(ckpt.model, opened)  # checks both fingerprints
    before = after = None
    name = dataset or ckpt.meta.get("dataset")
    if evaluate:
        name, test = checkpoint_data(ckpt, "test", dataset=dataset, data=data, data_dir=data_dir)
        before, after = accuracy(ckpt.model, test), accuracy(restored, test)
    record = {"unlocked_from": str(locked), "key_created": opened.created}
    save_like(ckpt, restored, out, dataset=ckpt.dataset, locked=False, record=record, force=force, made_by="unlock")
    return Unlocked(str(locked), Path(out), restored, opened.num_changed, opened.original_fingerprint,
                    None if user is None else str(user), name, before, after, time.perf_counter() - start)  # fmt: skip


def open_unlocked(
    locked: str | os.PathLike[str],
    key: str | os.PathLike[str] | Key,
    *,
    passphrase: Passphrase | None = None,
    device: str = "auto",
) -> nn.Module:
    """The model of the locked folder ``locked``, unlocked in memory with ``key``: what a
    customer's serving code calls. The unlocked weights are never written anywhere; the
    model is restored in place (no second copy in memory), in eval mode, on ``device``.
    For a Hugging Face folder it is the ``transformers`` model itself (``generate``,
    ``config``, the whole class), as ``from_pretrained`` would give it unlocked.

    Example (``pip install advparams[huggingface]``)::

        from advparams import open_unlocked
        model = open_unlocked("vit-locked", "customer.key", passphrase=os.environb[b"KEY_PASSPHRASE"])
        logits = model(pixel_values).logits

    Raises:
        KeyMismatchError: the key is not this model's (another model's, or another
            user's key of a different model); KeyFileError: a corrupt or sealed key
            without its passphrase; CheckpointError: a damaged folder.
    """
    from advparams.keys import load_key, unlock_

    opened = key if isinstance(key, Key) else load_key(key, passphrase=passphrase)
    ckpt = load_checkpoint(locked, device=resolve_device(device))
    return unlock_(ckpt.model, opened).eval()


__all__ = ["DEFAULT_SCHEME", "Locked", "Unlocked", "lock_checkpoint", "open_unlocked", "unlock_checkpoint"]
