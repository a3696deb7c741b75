"""Device selection shared by the API and the CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from advparams.errors import AdvParamsError


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when present, else CPU; otherwise the named device.

    Raises:
        AdvParamsError: CUDA was asked for but is not available.
    """
    if spec is None or spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise AdvParamsError(f"unknown device {spec!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AdvParamsError(f"device {spec!r} requested but CUDA is not available on this machine")
    return dev


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for an empty model)."""
    for t in model.parameters():
        return t.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def model_float_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 if none)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


MKL_STRICT = "AUTO,STRICT"
"""MKL's strict conditional numerical reproducibility: its matrix products give the same
bits whatever the number of threads. It takes effect only if set before MKL's first call
in the process: :func:`strict_mkl` sets it where work starts (the command line, the
evaluation, each Ray worker's first unit); importing advparams changes nothing."""


def strict_mkl() -> str:
    """Chooses :data:`MKL_STRICT` for this process unless ``MKL_CBWR`` is already set (a
    user's own choice is kept); returns the mode in force. Call it before the first matrix
    product: MKL reads the variable once, at its first call.

    >>> strict_mkl() == os.environ["MKL_CBWR"]
    True
    """
    return os.environ.setdefault("MKL_CBWR", MKL_STRICT)


@contextmanager
def reproducible_numerics() -> Iterator[None]:
    """CPU results inside the block do not depend on the number of torch threads.

    oneDNN's convolutions split their sums by thread, so the same training gives other
    bits with 1 and with 2 threads; inside the block convolutions take torch's own path
    (im2col and MKL's matrix products, which :data:`MKL_STRICT` keeps exact). It is
    slower on CPU (about 1.5x for LeNet training with 2 threads on the 2-core machine)
    and changes nothing on CUDA. The evaluation engine runs every unit inside it, so that
    a run gives the same numbers with one process and with several.
    """
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before  # type: ignore[assignment]


def numerics() -> dict[str, Any]:
    """What decides whether CPU results depend on the thread count (for run records)."""
    return {"mkl_cbwr": os.environ.get("MKL_CBWR"), "mkldnn": bool(torch.backends.mkldnn.enabled)}
