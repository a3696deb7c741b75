"""Fingerprints (SHA-256 digests) of model weights.

A fingerprint covers every entry of a ``state_dict`` (parameters and buffers): its name,
dtype, shape and raw bytes, in sorted name order. Two models have the same fingerprint
exactly when every tensor is bit-identical, so it detects a key applied to the wrong
model and proves that an unlocked model is the original.

A *tensors fingerprint* (``blake3-tensors:``) covers the tensors a model's files hold
(a Hugging Face folder's shards: a tied weight once, under its file name) and is built
from one digest per tensor, so it can be computed tensor by tensor, in any order, at the
speed of memory while a folder streams through (:mod:`advparams.streaming`):

* a tensor's digest is the BLAKE3 hash of its raw bytes (C order), computed on all cores
  for a large tensor (BLAKE3 is a tree hash);
* the fingerprint is the BLAKE3 hash of ``b"advparams-tensors-fingerprint-v1\0"`` and,
  per tensor in sorted name order, the 8-byte little-endian length and bytes of the JSON
  ``[name, safetensors dtype, shape]`` followed by the tensor's 32-byte digest.

Keys carry either kind; checks compare like with like (:func:`fingerprint_like`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

PREFIX = "sha256:"
TENSORS_PREFIX = "blake3-tensors:"
_PARALLEL = 1 << 24  # bytes from which a tensor is hashed on all cores


def tensor_bytes(t: torch.Tensor) -> bytes:
    """Raw bytes of a tensor in C order (works for bfloat16 and 0-d tensors too)."""
    t = t.detach().to("cpu").contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    return t.view(torch.uint8).numpy().tobytes()


def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 fingerprint of a state dict, as ``"sha256:<hex>"``.

    Example:
        >>> a = {"w": torch.zeros(2)}
        >>> state_fingerprint(a) == state_fingerprint({"w": torch.zeros(2)})
        True
        >>> state_fingerprint(a) == state_fingerprint({"w": torch.tensor([0.0, -0.0])})
        False
    """
    h = hashlib.sha256(b"advparams-state-fingerprint-v1\0")
    for name in sorted(state):
        t = state[name]
        head = json.dumps([name, str(t.dtype), list(t.shape)]).encode()
        h.update(len(head).to_bytes(8, "little") + head)
        data = tensor_bytes(t)
        h.update(len(data).to_bytes(8, "little") + data)
    return PREFIX + h.hexdigest()


def model_fingerprint(model: nn.Module) -> str:
    """Fingerprint of ``model.state_dict()`` (parameters and buffers)."""
    return state_fingerprint(model.state_dict())


def state_equal(a: nn.Module, b: nn.Module) -> bool:
    """True when both models' state dicts hold the same names, dtypes and bit-identical values
    (``torch.equal`` per tensor: ``-0.0`` equals ``0.0`` here, unlike the fingerprint)."""
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(
        sa[k].dtype == sb[k].dtype and sa[k].shape == sb[k].shape and torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa
    )


def short(fp: str) -> str:
    """A short human form of a fingerprint for messages: ``sha256:1a2b3c4d5e6f``."""
    head = TENSORS_PREFIX if fp.startswith(TENSORS_PREFIX) else PREFIX
    return fp[: len(head) + 12]


def bytes_digest(data: Any) -> bytes:
    """A tensor's digest in a tensors fingerprint: the BLAKE3 hash of its bytes (``bytes``,
    a memory map's view or a uint8 array), on all cores when it is large."""
    from blake3 import blake3

    view = memoryview(data).cast("B")
    threads = blake3.AUTO if len(view) >= _PARALLEL else 1
    return blake3(view, max_threads=threads).digest()


def dtype_tag(dtype: torch.dtype) -> str:
    """The safetensors name of a torch dtype (``"F32"``, ``"BF16"``, ...)."""
    return _TAGS.get(dtype, str(dtype))


_TAGS = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
         torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
         torch.bool: "BOOL"}  # fmt: skip


def combine_digests(entries: Iterable[tuple[str, str, Iterable[int], bytes]]) -> str:
    """The tensors fingerprint of ``(name, safetensors dtype, shape, digest)`` entries."""
    from blake3 import blake3

    h = blake3(b"advparams-tensors-fingerprint-v1\0")
    for name, dtype, shape, digest in sorted(entries, key=lambda e: e[0]):
        head = json.dumps([name, dtype, list(shape)]).encode()
        h.update(len(head).to_bytes(8, "little") + head + digest)
    return TENSORS_PREFIX + h.hexdigest()


def tensors_fingerprint(tensors: Mapping[str, torch.Tensor]) -> str:
    """The tensors fingerprint of tensors in memory (see the module docstring)."""
    entries = []
    for name, t in tensors.items():
        flat = t.detach().to("cpu").contiguous().reshape(-1)
        data = flat.view(torch.uint8).numpy() if flat.numel() else b""
        entries.append((name, dtype_tag(t.dtype), list(t.shape), bytes_digest(data)))
    return combine_digests(entries)


def saved_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a model's files hold: a Hugging Face model's under the names its files
    use (a tied weight once), any other model's ``state_dict`` less tied repeats."""
    from transformers import PreTrainedModel

    if isinstance(model, PreTrainedModel):
        from advparams.huggingface.names import file_state

        return file_state(model)
    state = model.state_dict()
    tied = tied_names(state)
    return {k: v for k, v in state.items() if k not in tied}


def fingerprint_like(model: nn.Module, reference: str) -> str:
    """``model``'s fingerprint of the same kind as ``reference``: a tensors fingerprint
    of its saved tensors, or the state fingerprint."""
    if reference.startswith(TENSORS_PREFIX):
        return tensors_fingerprint(saved_tensors(model))
    return model_fingerprint(model)


def tied_names(state: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """Each name whose tensor is one before it (same storage, offset, shape and strides),
    mapped to that first name."""
    first: dict[tuple[int, int, tuple[int, ...], tuple[int, ...]], str] = {}
    out = {}
    for name, t in state.items():
        if t.numel() == 0:
            continue
        where = (t.untyped_storage().data_ptr(), int(t.storage_offset()), tuple(t.shape), tuple(t.stride()))
        if where in first:
            out[name] = first[where]
        else:
            first[where] = name
    return out
