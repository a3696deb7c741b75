"""Key files: a documented, versioned, pickle-free format (see ``docs/key-format.md``).

A plain key file is a safetensors file. For entry ``i`` (one per changed tensor) it
holds three tensors: ``"{i}.index"`` (int64 flat positions), ``"{i}.original"`` and
``"{i}.locked"`` (values in the tensor's dtype). Its string metadata holds:

============================  ==============================================
``format``                    ``"advparams-key"``
``version``                   ``"1"``
``names``                     JSON list: the ``state_dict`` name of entry ``i``
``scheme`` / ``config``       the scheme and its resolved configuration (JSON)
``original_fingerprint``      SHA-256 fingerprint of the original weights
``locked_fingerprint``        SHA-256 fingerprint of the locked weights
``info`` / ``created``        facts about the lock (JSON) / ISO-8601 UTC time
``advparams_version``         the version that wrote it
``digest``                    SHA-256 over all other metadata and tensors
``shuffles``                  version 2 only: JSON list of ``[name, numel, count]``
============================  ==============================================

Version 2 adds keyed shuffles (:mod:`advparams.keys.shuffle`): the ``shuffles``
metadata and a ``"secret"`` tensor (32 uint8). A key without shuffles is written as
version 1, so older readers still read it; this version reads both.

The digest detects corruption and casual edits; it is not a signature (anyone can
recompute it). For secrecy and authenticity, seal the key with a passphrase
(:mod:`advparams.keys.seal`): the file is then encrypted with AES-256-GCM.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from advparams import __version__
from advparams._io import atomic_write_bytes
from advparams.errors import KeyFileError, PassphraseError
from advparams.fingerprint import tensor_bytes
from advparams.keys.key import Key, KeyEntry, Shuffle
from advparams.keys.seal import is_sealed, seal, unseal

KEY_FORMAT = "advparams-key"
KEY_VERSION = 2
_READS = ("1", "2")
MAX_HEADER = 100 * 1024 * 1024


def _digest(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    return tagged_digest(b"advparams-key-digest-v1\0", meta, tensors)


def tagged_digest(tag: bytes, meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over ``tag``, the metadata other than ``digest`` (sorted JSON) and every
    tensor's name, dtype, shape and bytes: the digest of the toolkit's safetensors files."""
    h = hashlib.sha256(tag)
    h.update(json.dumps({k: v for k, v in meta.items() if k != "digest"}, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name]
        head = json.dumps([name, str(t.dtype), list(t.shape)]).encode()
        data = tensor_bytes(t)
        h.update(len(head).to_bytes(8, "little") + head + len(data).to_bytes(8, "little") + data)
    return "sha256:" + h.hexdigest()


def key_to_bytes(key: Key) -> bytes:
    """Serialises ``key`` as a plain (unsealed) key file."""
    tensors: dict[str, torch.Tensor] = {}
    for i, e in enumerate(key.entries):
        tensors[f"{i}.index"] = e.indices.contiguous()
        tensors[f"{i}.original"] = e.original.contiguous()
        tensors[f"{i}.locked"] = e.locked.contiguous()
    if key.shuffles:
        tensors["secret"] = torch.frombuffer(bytearray(key.secret), dtype=torch.uint8).clone()
    meta = {
        "format": KEY_FORMAT,
        "version": "2" if key.shuffles else "1",
        "names": json.dumps([e.name for e in key.entries]),
        "scheme": key.scheme,
        "config": json.dumps(dict(key.config), sort_keys=True),
        "info": json.dumps(dict(key.info), sort_keys=True),
        "original_fingerprint": key.original_fingerprint,
        "locked_fingerprint": key.locked_fingerprint,
        "created": key.created,
        "advparams_version": __version__,
    }
    if key.shuffles:
        meta["shuffles"] = json.dumps([[sh.name, sh.numel, sh.count] for sh in key.shuffles])
    meta["digest"] = _digest(meta, tensors)
    return st_save(tensors, metadata=meta)


def _metadata(data: bytes) -> dict[str, Any]:
    if len(data) < 8:
        raise KeyFileError("key file is truncated or not a key file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER or 8 + n > len(data):
        raise KeyFileError("key file is truncated or not a key file")
    try:
        header = json.loads(data[8 : 8 + n])
    except ValueError:
        raise KeyFileError("key file is corrupt or not a key file (bad header)") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise KeyFileError("not an advparams key file (no metadata)")
    return meta


def key_from_bytes(data: bytes) -> Key:
    """Parses a plain key file, checking its format, version and digest."""
    meta = _metadata(data)
    if meta.get("format") != KEY_FORMAT:
        raise KeyFileError(f"not an advparams key file (format {meta.get('format')!r})")
    if meta.get("version") not in _READS:
        raise KeyFileError(
            f"key file version {meta.get('version')!r} is not supported (this version reads {', '.join(_READS)})"
        )
    try:
        tensors = st_load(data)
    except Exception as exc:  # noqa: BLE001  (safetensors raises its own error types)
        raise KeyFileError(f"key file is truncated or corrupt ({type(exc).__name__})") from None
    if meta.get("digest") != _digest(meta, tensors):
        raise KeyFileError("key file is corrupt or was edited (digest mismatch)")
    try:
        names = json.loads(meta["names"])
        entries = tuple(
            KeyEntry(name, tensors[f"{i}.index"], tensors[f"{i}.original"], tensors[f"{i}.locked"])
            for i, name in enumerate(names)
        )
        shuffles = tuple(
            Shuffle(str(n), int(numel), int(count)) for n, numel, count in json.loads(meta.get("shuffles", "[]"))
        )
        secret = bytes(tensors["secret"].tolist()) if shuffles else b""
        if shuffles and meta.get("version") != "2":
            raise KeyFileError("key file is corrupt (shuffles in a version-1 file)")
        if len(tensors) != 3 * len(names) + (1 if shuffles else 0):
            raise KeyFileError("key file holds unexpected tensors")
        return Key(
            entries=entries,
            original_fingerprint=meta["original_fingerprint"],
            locked_fingerprint=meta["locked_fingerprint"],
            scheme=meta["scheme"],
            config=json.loads(meta["config"]),
            info=json.loads(meta["info"]),
            created=meta.get("created", ""),
            shuffles=shuffles,
            secret=secret,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise KeyFileError(f"key file is corrupt ({type(exc).__name__}: {exc})") from None


def save_key(key: Key, path: str | os.PathLike[str], *, passphrase: str | None = None, force: bool = False) -> Path:
    """Writes ``key`` to ``path`` atomically, sealed when a ``passphrase`` is given.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False.
    """
    data = key_to_bytes(key)
    if passphrase is not None:
        data = seal(data, passphrase)
    return atomic_write_bytes(path, data, force=force, private=True)


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """Reads a key file's bytes, with a clear error when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None


def key_is_sealed(path: str | os.PathLike[str]) -> bool:
    """True when the key file at ``path`` is sealed with a passphrase."""
    return is_sealed(read_key_file(path))


def load_key(path: str | os.PathLike[str], *, passphrase: str | None = None) -> Key:
    """Reads a key file (plain or sealed).

    Raises:
        KeyFileError: missing, truncated, corrupt or not a key file.
        PassphraseError: sealed and no passphrase, a wrong one, or tampered with.
    """
    data = read_key_file(path)
    if is_sealed(data):
        if passphrase is None:
            raise PassphraseError(f"key file {path} is sealed: a passphrase is needed")
        data = unseal(data, passphrase)
    return key_from_bytes(data)
