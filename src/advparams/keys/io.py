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
``shuffles``                  version 2 on: JSON list of ``[name, numel, count]``
============================  ==============================================

Version 2 adds keyed shuffles (:mod:`advparams.keys.shuffle`): the ``shuffles``
metadata and a ``"secret"`` tensor (32 uint8). A key without shuffles is written as
version 1, so older readers still read it; this version reads both.

The digest detects corruption and casual edits; it is not a signature (anyone can
recompute it). For secrecy and authenticity, seal the key with a passphrase
(:mod:`advparams.keys.seal`): the file is then encrypted with AES-256-GCM.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from advparams.errors import KeyFileError, PassphraseError
from advparams.files import SecretFormat, integer, parse_json, safetensors_metadata, string
from advparams.fingerprint import TENSORS_PREFIX
from advparams.keys.key import Key, KeyEntry, Shuffle
from advparams.keys.seal import Passphrase, is_sealed, seal, unseal
from advparams.keys.shuffle import SECRET_BYTES

KEY_FORMAT = "advparams-key"
FORMAT = SecretFormat(KEY_FORMAT, "1", "key file", "key", KeyFileError, reads=("1", "2", "3", "4", "5"))
"""The file format (:class:`advparams.files.SecretFormat`); a key is written as the lowest
version that holds it (:func:`_version`)."""


def key_file_digest(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """The ``digest`` field of a key file with this metadata and these tensors (not a signature)."""
    return FORMAT.digest(meta, tensors)


def _version(key: Key) -> str:
    """1: entries only; 2: shuffles; 3: dithered shuffles; 4: tensors fingerprints or
    blocked shuffles; 5: a user key with row keys (older versions cannot read them)."""
    if key.row_keys:
        return "5"
    if TENSORS_PREFIX in key.original_fingerprint + key.locked_fingerprint or any(
        sh.layout != 1 for sh in key.shuffles
    ):
        return "4"
    if any(sh.dither for sh in key.shuffles):
        return "3"
    return "2" if key.shuffles else "1"


def key_to_bytes(key: Key) -> bytes:
    """Serialises ``key`` as a plain (unsealed) key file."""
    tensors: dict[str, torch.Tensor] = {}
    for i, e in enumerate(key.entries):
        tensors[f"{i}.index"] = e.indices.contiguous()
        tensors[f"{i}.original"] = e.original.contiguous()
        tensors[f"{i}.locked"] = e.locked.contiguous()
    if key.row_keys:
        tensors["perm_secret"] = torch.frombuffer(bytearray(key.perm_secret), dtype=torch.uint8).clone()
        tensors["mask_key"] = torch.frombuffer(bytearray(key.mask_key), dtype=torch.uint8).clone()
        for j, sh in enumerate(key.shuffles):
            tensors[f"rowkeys.{j}"] = key.row_keys[sh.name].contiguous()
    elif key.shuffles:
        tensors["secret"] = torch.frombuffer(bytearray(key.secret), dtype=torch.uint8).clone()
    meta = {
        "names": json.dumps([e.name for e in key.entries]),
        "scheme": key.scheme,
        "config": json.dumps(dict(key.config), sort_keys=True),
        "info": json.dumps(dict(key.info), sort_keys=True),
        "original_fingerprint": key.original_fingerprint,
        "locked_fingerprint": key.locked_fingerprint,
        "created": key.created,
    }
    if key.shuffles:
        meta["shuffles"] = json.dumps(
            [
                [sh.name, sh.numel, sh.count]
                + ([sh.dither] if sh.dither or sh.layout != 1 else [])
                + ([sh.layout] if sh.layout != 1 else [])
                for sh in key.shuffles
            ]  # fmt: skip
        )
    return FORMAT.encode(tensors, meta, version=_version(key))


def key_metadata(data: bytes) -> dict[str, str]:
    """The string metadata of a key file's bytes, read with bounded depth and size."""
    return safetensors_metadata(data, what="key file", error=KeyFileError)


_FINGERPRINT = re.compile(r"(sha256|blake3-tensors):[0-9a-f]{64}")
MAX_ENTRIES = 100_000  # changed tensors in one key
MAX_NUMEL = 2**40  # values in one shuffled tensor


def _json_field(meta: dict[str, str], name: str, kind: type) -> Any:
    if name not in meta:
        raise KeyFileError(f"key file is corrupt (no {name!r})")
    value = parse_json(meta[name], what=f"key file field {name!r}", error=KeyFileError)
    if not isinstance(value, kind):
        raise KeyFileError(f"key file is corrupt ({name!r} is not a JSON {kind.__name__})")
    return value


def _fingerprint_field(meta: dict[str, str], name: str) -> str:
    value = meta.get(name)
    if not isinstance(value, str) or not _FINGERPRINT.fullmatch(value):
        raise KeyFileError(f"key file is corrupt ({name!r} is not a fingerprint)")
    return value


_OPTIONAL = ("", ", dither", ", dither[, layout]")


def _shuffles(meta: dict[str, str]) -> tuple[Shuffle, ...]:
    raw = _json_field(meta, "shuffles", list) if "shuffles" in meta else []
    sizes = {"3": (3, 4), "4": (3, 4, 5), "5": (5,)}.get(meta.get("version", ""), (3,))
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, list) or len(item) not in sizes:
            raise KeyFileError(
                f"key file is corrupt (shuffle {i} is not [name, numel, count{_OPTIONAL[len(sizes) - 1]}])"
            )
        name = string(item[0], what=f"key file shuffle {i} name", error=KeyFileError)
        numel = integer(item[1], what=f"key file shuffle {i} size", lo=2, hi=MAX_NUMEL, error=KeyFileError)
        count = integer(item[2], what=f"key file shuffle {i} count", lo=2, hi=numel, error=KeyFileError)
        low = 0 if len(item) == 5 else 1  # a blocked shuffle may leave the mantissas as they are
        dither = (
            integer(item[3], what=f"key file shuffle {i} dither", lo=low, hi=52, error=KeyFileError)
            if len(item) >= 4
            else 0
        )
        layout = (
            integer(item[4], what=f"key file shuffle {i} layout", lo=2, hi=2, error=KeyFileError)
            if len(item) == 5
            else 1
        )
        out.append(Shuffle(name, numel, count, dither, layout))
    return tuple(out)


def key_from_bytes(data: bytes) -> Key:
    """Parses a plain key file, checking its format, version, digest and every field."""
    meta, tensors = FORMAT.decode(data)
    names = _json_field(meta, "names", list)
    if len(names) > MAX_ENTRIES:
        raise KeyFileError(f"key file lists {len(names)} tensors, more than {MAX_ENTRIES}")
    for i, name in enumerate(names):
        string(name, what=f"key file name {i}", error=KeyFileError)
    if len(set(names)) != len(names):
        raise KeyFileError("key file is corrupt (a tensor is listed twice)")
    shuffles = _shuffles(meta)
    if shuffles and meta.get("version") == "1":
        raise KeyFileError("key file is corrupt (shuffles in a version-1 file)")
    if meta.get("version") == "3" and not any(sh.dither for sh in shuffles):
        raise KeyFileError("key file is corrupt (a version-3 file without dithered shuffles)")
    expected = {f"{i}.{part}" for i in range(len(names)) for part in ("index", "original", "locked")}
    user = meta.get("version") == "5"
    if user:
        expected |= {"perm_secret", "mask_key"} | {f"rowkeys.{j}" for j in range(len(shuffles))}
    elif shuffles:
        expected.add("secret")
    if set(tensors) != expected:
        raise KeyFileError("key file holds unexpected or missing tensors")
    secret = perm = mask = b""
    if shuffles and not user:
        secret = _secret_tensor(tensors, "secret")
    if user:
        perm, mask = _secret_tensor(tensors, "perm_secret"), _secret_tensor(tensors, "mask_key")
    entries = []
    for i, name in enumerate(names):
        index, original, locked = (tensors[f"{i}.{part}"] for part in ("index", "original", "locked"))
        if index.numel() and int(index.min()) < 0:
            raise KeyFileError(f"key entry {name!r} addresses a negative position")
        entries.append(KeyEntry(name, index, original, locked))
    return Key(
        entries=tuple(entries),
        original_fingerprint=_fingerprint_field(meta, "original_fingerprint"),
        locked_fingerprint=_fingerprint_field(meta, "locked_fingerprint"),
        scheme=string(meta.get("scheme"), what="key file scheme", max_len=200, error=KeyFileError),
        config=_json_field(meta, "config", dict),
        info=_json_field(meta, "info", dict),
        created=string(meta.get("created", ""), what="key file creation time", max_len=100, error=KeyFileError),
        shuffles=shuffles,
        secret=secret,
        perm_secret=perm,
        mask_key=mask,
        row_keys={sh.name: tensors[f"rowkeys.{j}"] for j, sh in enumerate(shuffles)} if user else {},
    )


def _secret_tensor(tensors: dict[str, torch.Tensor], name: str) -> bytes:
    t = tensors[name]
    if t.dtype != torch.uint8 or t.shape != (SECRET_BYTES,):
        raise KeyFileError(f"key file is corrupt (the {name.replace('_', ' ')} is not {SECRET_BYTES} bytes)")
    return bytes(t.tolist())


def save_key(
    key: Key, path: str | os.PathLike[str], *, passphrase: Passphrase | None = None, force: bool = False
) -> Path:
    """Writes ``key`` to ``path`` atomically, sealed when a ``passphrase`` is given. With
    ``force`` it replaces only a plain user key of the same locked model and user, which
    the owner can issue again (:func:`user_key_replaceable`); an owner key is replaced only
    together with its locked model, by :func:`advparams.locked.save_locked`, which never
    leaves one without the other.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False, or it is not a key
            this key may replace.
    """
    data = key_to_bytes(key)
    if passphrase is not None:
        data = seal(data, passphrase)
    user = key.info.get("user")
    return FORMAT.write(
        path,
        data,
        force=force,
        accept=lambda p: user_key_replaceable(p, key),
        what=f"an unsealed key of user {user!r} for this locked model"
        if user
        else "a key --force may replace (an owner key is replaced only with its locked model, by lock --force)",
    )


def user_key_replaceable(path: Path, new: Key) -> bool:
    """Whether ``--force`` may replace the key file at ``path`` with ``new``: both are user
    keys (issued by :func:`advparams.tracing.issue_user_key`) of the same locked model and
    the same user, so nothing is lost that the owner cannot issue again. An owner key, a
    key of another model or user, a sealed key (which cannot be read without its
    passphrase) and anything that is not a key are never replaced."""
    user = new.info.get("user")
    return isinstance(user, str) and user_key_replaceable_for(path, user, new.locked_fingerprint)


def user_key_replaceable_for(path: Path, user: str, locked_fingerprint: str) -> bool:
    """:func:`user_key_replaceable` before the new key exists: the file at ``path`` is a
    plain user key of ``user`` for the locked model with ``locked_fingerprint``."""
    try:
        data = read_key_file(path)
        if is_sealed(data):
            return False
        old = key_from_bytes(data)
    except KeyFileError:
        return False
    return old.info.get("user") == user and old.locked_fingerprint == locked_fingerprint


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """Reads a key file's bytes: a regular file within ``LIMITS["key"]``, else one clear error."""
    return FORMAT.read(path)


def is_key_file(path: Path) -> bool:
    """Whether ``path`` holds an advparams key (plain or sealed): what ``lock --force`` may replace."""
    try:
        data = read_key_file(path)
        if is_sealed(data):
            return True
        return key_metadata(data).get("format") == KEY_FORMAT
    except KeyFileError:
        return False


def key_is_sealed(path: str | os.PathLike[str]) -> bool:
    """True when the key file at ``path`` is sealed with a passphrase."""
    return is_sealed(read_key_file(path))


def load_key(path: str | os.PathLike[str], *, passphrase: Passphrase | None = None) -> Key:
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
