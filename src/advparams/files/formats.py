"""One format for every secret file the toolkit writes (keys, watermark keys, trigger,
fingerprint and query files): a safetensors file whose string metadata names the
``format`` and ``version``, records ``advparams_version`` and carries a ``digest`` (SHA-256
over a tag, the other metadata and every tensor). The digest detects corruption and
edits; it is not a signature. Each family keeps only its own encode and decode of the
fields; :class:`SecretFormat` does the rest: the bounded read, the checks in the order
that costs least, the digest and the atomic, owner-only write.

Example:
    >>> import torch
    >>> from advparams.errors import AdvParamsError
    >>> notes = SecretFormat("advparams-notes", "1", "notes file", "trigger", AdvParamsError)
    >>> data = notes.encode({"x": torch.arange(3)}, {"title": "demo"})
    >>> meta, tensors = notes.decode(data)
    >>> meta["title"], tensors["x"].tolist()
    ('demo', [0, 1, 2])
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advparams.errors import AdvParamsError
from advparams.files.reading import LIMITS, read_file
from advparams.files.tensors import TensorSpec, is_safetensors_format, open_safetensors
from advparams.files.writing import atomic_write_bytes
from advparams.fingerprint import tensor_bytes
from advparams.version import __version__

RESERVED = ("format", "version", "advparams_version", "digest")
"""Metadata fields every secret file holds, written by :meth:`SecretFormat.encode`."""


def tagged_digest(tag: bytes, meta: Mapping[str, str], tensors: Mapping[str, torch.Tensor]) -> str:
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


@dataclass(frozen=True)
class SecretFormat:
    """One secret-file format.

    Attributes:
        name: the ``format`` field (``"advparams-trigger"``).
        version: the version written unless :meth:`encode` is told another.
        what: the file's name in messages (``"trigger file"``).
        limit: its size cap, a key of :data:`advparams.files.LIMITS`.
        error: the error raised for a file that cannot be used.
        reads: the versions read (default: ``version`` only).
        tag: the digest's tag (default: ``b"<name>-digest-v1\\0"``).
    """

    name: str
    version: str
    what: str
    limit: str
    error: type[AdvParamsError]
    reads: tuple[str, ...] = ()
    tag: bytes = b""

    def __post_init__(self) -> None:
        if self.limit not in LIMITS:
            raise ValueError(f"no size limit named {self.limit!r}")
        if not self.reads:
            object.__setattr__(self, "reads", (self.version,))
        if not self.tag:
            object.__setattr__(self, "tag", f"{self.name}-digest-v1\0".encode())

    def digest(self, meta: Mapping[str, str], tensors: Mapping[str, torch.Tensor]) -> str:
        """The ``digest`` field of a file of this format with this metadata and these tensors."""
        return tagged_digest(self.tag, meta, tensors)

    def encode(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], *, version: str = "") -> bytes:
        """The file's bytes: ``meta`` (the family's fields) with ``format``, ``version``,
        ``advparams_version`` and ``digest`` added."""
        from safetensors.torch import save as st_save

        clash = sorted(set(meta) & set(RESERVED))
        if clash:
            raise ValueError(f"{self.what} field {clash[0]!r} is written by the format itself")
        full = {"format": self.name, "version": version or self.version, **meta, "advparams_version": __version__}
        body = {k: v.contiguous() for k, v in tensors.items()}
        full["digest"] = self.digest(full, body)
        return st_save(body, metadata=full)

    def decode(
        self, data: bytes, *, check: Callable[[dict[str, str], dict[str, TensorSpec]], None] | None = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """``(metadata, tensors)`` of a file's bytes: bounded header, ``format``, one of
        :attr:`reads`, the family's ``check`` of the declared tensors (nothing copied yet),
        the tensors, then the digest. The family checks the values after."""
        return open_safetensors(
            data, what=self.what, file_format=self.name, version=self.reads, digest=self.digest, error=self.error,
            check=check,
        )  # fmt: skip

    def read(self, path: str | os.PathLike[str]) -> bytes:
        """A file's bytes: a regular file within its size limit, else one clear error."""
        return read_file(path, what=self.what, limit=LIMITS[self.limit], error=self.error)

    def is_file(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` holds a file of this format (what ``--force`` may replace)."""
        return is_safetensors_format(path, self.name, what=self.what, limit=LIMITS[self.limit])

    def write(
        self,
        path: str | os.PathLike[str],
        data: bytes,
        *,
        force: bool = False,
        accept: Callable[[Path], bool] | None = None,
        what: str | None = None,
    ) -> Path:
        """Writes ``data`` to ``path`` atomically with owner-only permissions; with ``force``
        it replaces only a file ``accept`` accepts (default: one of this format)."""
        return atomic_write_bytes(path, data, force=force, private=True, accept=accept or self.is_file, what=what)
