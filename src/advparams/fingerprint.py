"""Fingerprints (SHA-256 digests) of model weights.

A fingerprint covers every entry of a ``state_dict`` (parameters and buffers): its name,
dtype, shape and raw bytes, in sorted name order. Two models have the same fingerprint
exactly when every tensor is bit-identical, so it detects a key applied to the wrong
model and proves that an unlocked model is the original.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import torch
from torch import nn

PREFIX = "sha256:"


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
    return fp[: len(PREFIX) + 12]
