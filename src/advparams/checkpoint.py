"""Model checkpoints: a folder with ``model.safetensors`` (weights) and ``model.json``.

``model.json`` names the registered architecture and its arguments, so the model can be
rebuilt without pickles, and carries the weights' fingerprint, so a corrupt or edited
weight file is detected on load::

    {"format": "advparams-checkpoint", "version": 1,
     "architecture": "lenet", "arguments": {"num_classes": 10, "in_channels": 1, "input_size": 28},
     "dataset": "fashion-mnist", "dtype": "float32", "fingerprint": "sha256:…",
     "num_parameters": 61706, "locked": false, "created": "…", "advparams_version": "0.1.0",
     "record": {…}}

The folder is written to a temporary sibling and renamed into place, so a reader never
sees half a checkpoint; an existing folder is replaced only with ``force``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from advparams import __version__
from advparams._io import atomic_directory
from advparams.errors import AdvParamsError, CheckpointError
from advparams.fingerprint import model_fingerprint
from advparams.models import MODELS, count_parameters

CHECKPOINT_FORMAT = "advparams-checkpoint"
CHECKPOINT_VERSION = 1
WEIGHTS = "model.safetensors"
META = "model.json"
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model: the rebuilt model, weights loaded, in eval mode.
        architecture: its registered model name.
        arguments: the arguments it was built with.
        dataset: the data set it was trained for, if recorded.
        meta: the whole ``model.json``.
    """

    model: nn.Module
    architecture: str
    arguments: dict[str, Any]
    dataset: str | None
    meta: dict[str, Any] = field(default_factory=dict)


def _dtype_name(model: nn.Module) -> str:
    for p in model.parameters():
        if p.is_floating_point():
            return str(p.dtype).removeprefix("torch.")
    return "float32"


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    architecture: str,
    arguments: dict[str, Any],
    dataset: str | None = None,
    locked: bool = False,
    record: dict[str, Any] | None = None,
    force: bool = False,
) -> Path:
    """Writes ``model`` as a checkpoint folder at ``path`` (atomically).

    Args:
        model: the model; its ``state_dict`` is saved.
        path: the checkpoint folder to create.
        architecture: the registered model name that rebuilds it.
        arguments: the keyword arguments that rebuild it.
        dataset: the data set it is meant for (used as the CLI's default).
        locked: whether these are locked weights.
        record: JSON-ready facts to keep with it (training history, accuracies, ...).
        force: replace an existing ``path``.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False.
    """
    if architecture not in MODELS:
        MODELS.get(architecture)  # raises UnknownNameError with the known names
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    meta = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "architecture": architecture,
        "arguments": dict(arguments),
        "dataset": dataset,
        "dtype": _dtype_name(model),
        "fingerprint": model_fingerprint(model),
        "num_parameters": count_parameters(model),
        "locked": locked,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "advparams_version": __version__,
        "torch_version": torch.__version__,
        "record": dict(record or {}),
    }
    with atomic_directory(path, force=force) as tmp:
        save_file(state, str(tmp / WEIGHTS), metadata={"format": CHECKPOINT_FORMAT})
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return Path(path)


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads and checks a checkpoint's ``model.json``."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    if not p.is_dir():
        raise CheckpointError(f"{p} is not a checkpoint folder (expected a folder with {META} and {WEIGHTS})")
    try:
        meta = json.loads((p / META).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {p} has no {META}") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{p / META} is corrupt ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p / META} is not an advparams checkpoint description")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint version {meta.get('version')!r} is not supported (this is {CHECKPOINT_VERSION})"
        )
    for name in ("architecture", "arguments", "fingerprint"):
        if name not in meta:
            raise CheckpointError(f"{p / META} lacks {name!r}")
    if not isinstance(meta["arguments"], dict):
        raise CheckpointError(f"{p / META}: 'arguments' must be an object")
    return meta


def load_checkpoint(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Checkpoint:
    """Loads a checkpoint folder, rebuilding the model and checking its fingerprint.

    Raises:
        CheckpointError: missing, truncated, corrupt or inconsistent checkpoint.
        UnknownNameError: the architecture is not registered.
    """
    p = Path(path)
    meta = read_meta(p)
    try:
        model = MODELS.build(meta["architecture"], meta["arguments"])
    except AdvParamsError:
        raise
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"cannot rebuild {meta['architecture']!r} from {p / META}: {exc}") from None
    dtype = _DTYPES.get(str(meta.get("dtype", "float32")))
    if dtype is None:
        raise CheckpointError(f"{p / META}: unsupported dtype {meta.get('dtype')!r}")
    model = model.to(dtype)
    try:
        state = load_file(str(p / WEIGHTS))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {p} has no {WEIGHTS}") from None
    except Exception as exc:  # noqa: BLE001  (safetensors raises its own error types)
        raise CheckpointError(f"{p / WEIGHTS} is truncated or corrupt ({type(exc).__name__})") from None
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{p / WEIGHTS} does not fit {meta['architecture']}: missing {missing[:3]}, unexpected {extra[:3]}"
        )
    for k, t in state.items():
        if t.shape != expected[k].shape or t.dtype != expected[k].dtype:
            raise CheckpointError(
                f"{p / WEIGHTS}: tensor {k!r} is {t.dtype} {tuple(t.shape)}, "
                f"the model needs {expected[k].dtype} {tuple(expected[k].shape)}"
            )
    model.load_state_dict(state)
    if model_fingerprint(model) != meta["fingerprint"]:
        raise CheckpointError(f"{p / WEIGHTS} does not match the fingerprint in {META}: corrupt or edited")
    model.eval()
    return Checkpoint(model.to(device), meta["architecture"], dict(meta["arguments"]), meta.get("dataset"), meta)
