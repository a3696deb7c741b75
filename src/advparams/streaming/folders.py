"""Keys applied to Hugging Face folders tensor by tensor: lock and unlock without loading
the model (``docs/scale.md``).

:func:`stream_folder` reads every shard of a folder (:mod:`advparams.streaming.shards`),
changes the tensors a key changes, copies the others, and writes the result in the same
layout into a staging folder, computing the tensors fingerprints
(:func:`advparams.fingerprint.tensors_fingerprint`) of what it read and what it wrote on
the way. :func:`unlock_folder` and :func:`lock_folder` put the result in place only after
both fingerprints match the key's; :func:`lock_folder` writes the key first
(:func:`advparams.files.install_folder_with_key`), so a locked folder never appears
without its key, even when the process is killed at any point (the next run completes or
rolls back what was staged).

A key streams when its fingerprints are tensors fingerprints (made by a streamed lock, or
by ``lock`` on a Hugging Face folder) and it names tensors by the names the folder's files
use; :func:`streams` says whether one does.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from advparams.errors import CheckpointError, KeyFileError, KeyMismatchError
from advparams.files import install_folder_with_key, staging_folder
from advparams.fingerprint import TENSORS_PREFIX, bytes_digest, combine_digests, short
from advparams.keys.key import Key
from advparams.keys.shuffle import MANTISSA_BITS
from advparams.streaming.shards import Shard, ShardWriter, read_shard

__all__ = [
    "Streamed",
    "folder_fingerprint",
    "key_changes",
    "lock_folder",
    "stream_folder",
    "streams",
    "unlock_folder",
]

_WORKERS = 4
"""Tensors streamed at once (at most, and at most one per core): each worker reads,
hashes, changes and writes its own tensor."""
Change = Callable[[torch.Tensor], torch.Tensor]
"""A tensor's new flat values from its flat values (which it may change: a working copy)."""


@dataclass(frozen=True)
class Streamed:
    """What :func:`stream_folder` did (no key material).

    Attributes:
        input_fingerprint: tensors fingerprint of the folder read.
        output_fingerprint: tensors fingerprint of the folder written.
        tensors: tensors read; changed: those changed.
        bytes: bytes of tensors read.
        seconds: wall-clock time.
    """

    input_fingerprint: str
    output_fingerprint: str
    tensors: int
    changed: int
    bytes: int
    seconds: float


def _hf() -> Any:
    from advparams.huggingface import folder

    return folder


def stream_folder(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str] | None,
    changes: dict[str, Change],
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    budget: int | None = None,
) -> Streamed:
    """Streams the weights of Hugging Face folder ``source`` into the existing folder
    ``dest`` (``None``: reads only, for the fingerprint), applying ``changes`` (tensor
    name to its change: :data:`Change`). ``progress(done, total)`` is called
    with bytes after each tensor. Up to ``workers`` tensors are worked on at once
    (default: :data:`_WORKERS`, at most one per core), as long as the tensors being changed
    take at most ``budget`` bytes with their new values (default: twice the largest
    tensor's bytes, or 256 MiB if more; one tensor always goes).

    Raises:
        CheckpointError: a malformed or missing shard, a tensor in two shards.
        KeyMismatchError: a change names a tensor that no shard holds.
    """
    start = time.perf_counter()
    src = Path(source)
    names = _hf().weight_files(src)
    shards = [read_shard(src / n) for n in names]
    seen: set[str] = set()
    for shard in shards:
        both = seen & set(shard.tensors)
        if both:
            raise CheckpointError(f"{src}: tensor {sorted(both)[0][:80]!r} is in two shards")
        seen |= set(shard.tensors)
    missing = sorted(set(changes) - seen)
    if missing:
        raise KeyMismatchError(
            f"the key changes tensor {missing[0][:80]!r}, which the files of {src} do not hold: "
            "not this model's key, or a key made for the loaded model (unlock it in memory)"
        )
    total = sum(shard.bytes_of(n) for shard in shards for n in shard.tensors)
    done = [0]
    digests: dict[str, tuple[str, tuple[int, ...], bytes, bytes]] = {}
    lock = threading.Lock()

    largest = max((shard.bytes_of(n) for shard in shards for n in shard.tensors), default=0)
    room = _Budget(budget if budget is not None else max(2 * largest, 256 << 20))

    def one(shard: Shard, writer: ShardWriter | None, name: str) -> None:
        spec = shard.tensors[name]
        if name in changes:
            with room.take(2 * shard.bytes_of(name)):  # the values read and the new ones
                t = shard.read(name)
                d0 = bytes_digest(t.view(torch.uint8).numpy()) if t.numel() else bytes_digest(b"")
                t = changes[name](t)
                d1 = bytes_digest(t.view(torch.uint8).numpy()) if t.numel() else bytes_digest(b"")
                if writer is not None:
                    writer.write(name, t)
                del t
        else:
            with shard.mapped(name) as view:
                d0 = d1 = bytes_digest(view)
            if writer is not None:
                writer.copy(name)
        with lock:
            digests[name] = (spec.dtype, spec.shape, d0, d1)
            done[0] += shard.bytes_of(name)
            if progress is not None:
                progress(done[0], total)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers are the parallelism: torch's own threads would wait on each other
    try:
        with ThreadPoolExecutor(workers or min(_WORKERS, os.cpu_count() or 1)) as pool:
            for shard in shards:
                _stream_shard(pool, shard, dest, one)
    finally:
        torch.set_num_threads(threads)
    before = [(n, d[0], d[1], d[2]) for n, d in digests.items()]
    before = [(n, d[0], d[1], d[2]) for n, d in digests.items()]
    after = [(n, d[0], d[1], d[3]) for n, d in digests.items()]
    return Streamed(combine_digests(before), combine_digests(after), len(before),
                    len(changes), total, time.perf_counter() - start)  # fmt: skip


class _Budget:
    """Bytes of tensors in memory at once: a worker waits until its tensor fits, unless
    nothing else is in memory."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self.cond = threading.Condition()

    @contextmanager
    def take(self, size: int) -> Iterator[None]:
        with self.cond:
            self.cond.wait_for(lambda: self.used == 0 or self.used + size <= self.limit)
            self.used += size
        try:
            yield
        finally:
            with self.cond:
                self.used -= size
                self.cond.notify_all()


def _stream_shard(
    pool: ThreadPoolExecutor, shard: Shard, dest: str | os.PathLike[str] | None, one: Callable[..., None]
) -> None:
    """Streams one shard's tensors on ``pool`` (the largest first, so that the small ones
    fill the end in parallel) and names the written shard once all are in."""
    writer = None if dest is None else ShardWriter(shard, Path(dest) / shard.path.name)
    names = sorted(shard.tensors, key=lambda n: -shard.bytes_of(n))
    futures = [pool.submit(one, shard, writer, n) for n in names]
    try:
        for f in futures:
            f.result()
        if writer is not None:
            writer.close()
    except BaseException:
        for f in futures:
            f.cancel()
        wait(futures)  # the running ones end before their shard is removed
        if writer is not None:
            writer.abort()
        raise


def folder_fingerprint(folder: str | os.PathLike[str]) -> str:
    """The tensors fingerprint of a Hugging Face folder's weights, read tensor by tensor."""
    return stream_folder(folder, None, {}).input_fingerprint


def key_changes(key: Key, *, undo: bool) -> dict[str, Change]:
    """The in-place change of each tensor that ``key`` locks (``undo``: unlocks)."""
    out: dict[str, Change] = {}
    for s in key.shuffles:

        def shuffle(flat: torch.Tensor, s: Any = s) -> torch.Tensor:
            if flat.numel() != s.numel:
                raise KeyMismatchError(f"the key shuffles {s.numel} values of {s.name!r}, which has {flat.numel()}")
            if s.dither and flat.dtype not in MANTISSA_BITS:
                raise KeyMismatchError(f"the key dithers {s.name!r}, which is {flat.dtype}")
            if not undo and key.row_keys:
                raise KeyMismatchError("a user key restores the user's copy; it does not lock a model")
            return key.unlocked_values(s, flat) if undo else s.locked(flat, key.secret)

        out[s.name] = shuffle
    for e in key.entries:

        def entry(flat: torch.Tensor, e: Any = e) -> torch.Tensor:
            if flat.dtype != e.original.dtype:
                raise KeyMismatchError(f"tensor {e.name!r} is {flat.dtype} but the key holds {e.original.dtype}")
            if e.indices.numel() and int(e.indices[-1]) >= flat.numel():
                raise KeyMismatchError(f"the key addresses position {int(e.indices[-1])} of {e.name!r}, "
                                       f"which has only {flat.numel()} values")  # fmt: skip
            flat[e.indices] = e.original if undo else e.locked
            return flat

        out[e.name] = entry
    return out


def streams(key: Key) -> bool:
    """Whether ``key`` can be applied to a folder without loading the model: its
    fingerprints are tensors fingerprints."""
    return key.locked_fingerprint.startswith(TENSORS_PREFIX) and key.original_fingerprint.startswith(TENSORS_PREFIX)


def _finish(
    source: Path, dest: Path, fingerprint: str, *, locked: bool, record: dict[str, Any], dataset: str | None = None
) -> None:
    """Copies ``source``'s files other than weights into ``dest`` and writes its record."""
    hf = _hf()
    if dataset is None:
        dataset = hf.read_state(source).get("dataset")
    hf.finish_folder(source, dest, hf.weight_files(source), locked=locked, fingerprint=fingerprint, dataset=dataset,
                     record=record)  # fmt: skip


def unlock_folder(
    locked: str | os.PathLike[str],
    key: Key,
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Streamed:
    """Writes the original of the locked Hugging Face folder ``locked`` to ``out``, tensor
    by tensor; ``out`` appears only once it is complete and checked.

    Raises:
        KeyMismatchError: ``key`` does not stream (:func:`streams`) or is not this folder's.
        KeyFileError: the result is not the key's original (a corrupt key).
    """
    from advparams.files import atomic_directory

    if not streams(key):
        raise KeyMismatchError("this key holds fingerprints of a loaded model, not of files: unlock it in memory")
    src = Path(locked)
    with atomic_directory(out, force=force, made_by="unlock") as tmp:
        done = stream_folder(src, tmp, key_changes(key, undo=True), progress=progress)
        if done.input_fingerprint == key.original_fingerprint:
            raise KeyMismatchError("this model is not locked: it already matches the key's original weights")
        if done.input_fingerprint != key.locked_fingerprint:
            raise KeyMismatchError(
                f"this key does not belong to this model: the key unlocks {short(key.locked_fingerprint)}, "
                f"the model is {short(done.input_fingerprint)}"
            )
        if done.output_fingerprint != key.original_fingerprint:
            raise KeyFileError("unlocking did not reproduce the original weights: the key is corrupt")
        _finish(src, tmp, done.output_fingerprint, locked=False,
                record={"unlocked_from": str(locked), "key_created": key.created})  # fmt: skip
    return done


def lock_folder(
    source: str | os.PathLike[str],
    key: Key,
    out: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    *,
    key_bytes: Callable[[Key], bytes],
    force: bool = False,
    record: dict[str, Any] | None = None,
    dataset: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Key:
    """Writes Hugging Face folder ``source`` locked by ``key`` (its shuffles and entries)
    to ``out`` and the key, with the tensors fingerprints of both ends, to ``key_path``
    (the file :func:`key_bytes` makes of it: plain or sealed), the key first. Returns that
    key. A key that already holds tensors fingerprints must match ``source`` (its
    original) and what the stream wrote (its locked end), or nothing is written.

    Raises:
        KeyMismatchError: ``source`` is not the key's original.
        OutputExistsError / ConfigError: as :func:`advparams.locked.check_locked_outputs`.
    """
    from advparams.locked import LOCK_COMMAND, check_locked_outputs, paired_with

    o, k = check_locked_outputs(out, key_path, force=force, source=source)
    src = Path(source)
    with staging_folder(o, made_by=LOCK_COMMAND) as tmp:
        done = stream_folder(src, tmp, key_changes(key, undo=False), progress=progress)
        known = key.original_fingerprint.startswith(TENSORS_PREFIX)
        if known and done.input_fingerprint != key.original_fingerprint:
            raise KeyMismatchError(f"this key was made from {short(key.original_fingerprint)}, "
                                   f"the model is {short(done.input_fingerprint)}")  # fmt: skip
        if known and done.output_fingerprint != key.locked_fingerprint:
            raise KeyMismatchError(f"the key locks to {short(key.locked_fingerprint)}, "
                                   f"the files locked to {short(done.output_fingerprint)}")  # fmt: skip
        if done.input_fingerprint == done.output_fingerprint:
            raise KeyMismatchError("the key changes nothing in this model's files")
        made = replace(key, original_fingerprint=done.input_fingerprint, locked_fingerprint=done.output_fingerprint)
        _finish(src, tmp, done.output_fingerprint, locked=True, record=dict(record or {}), dataset=dataset)
        install_folder_with_key(tmp, o, key_bytes(made), k, force=force, key_accept=paired_with(o))
    return made
