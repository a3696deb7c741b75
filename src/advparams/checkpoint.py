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
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from advparams.data.base import TokenDataset
from advparams.errors import AdvParamsError, CheckpointError, ConfigError
from advparams.files import LIMITS, atomic_directory, check_regular, integer, number, parse_json, read_file, string
from advparams.fingerprint import model_fingerprint
from advparams.models import MODELS, count_parameters
from advparams.version import __version__

if TYPE_CHECKING:
    from advparams.data.base import ImageDataset

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

    @property
    def is_huggingface(self) -> bool:
        """Whether it was read from a Hugging Face folder (:mod:`advparams.huggingface`)."""
        return self.meta.get("format") == "huggingface"

    def write(
        self,
        model: nn.Module,
        folder: Path,
        *,
        locked: bool = False,
        dataset: str | None = None,
        record: dict[str, Any] | None = None,
    ) -> None:
        """Writes ``model`` (this checkpoint's architecture, new weights) into the existing,
        empty ``folder`` in this checkpoint's own kind: an advparams checkpoint, or a
        Hugging Face folder in the layout of the one it was read from."""
        if self.is_huggingface:
            from advparams.huggingface.folder import write_hf_folder

            write_hf_folder(model, folder, self.meta["folder"], locked=locked, dataset=dataset, record=record)
        else:
            write_checkpoint(model, folder, architecture=self.architecture, arguments=self.arguments,
                             dataset=dataset, locked=locked, record=record)  # fmt: skip

    def check_fits(self, data: ImageDataset | TokenDataset) -> None:
        """Refuses a data set whose shape differs from the model's arguments, or that has
        more classes than the model has outputs. A model with *more* outputs fits (the
        additional-class watermark adds one: its extra output is never a data label, so
        answering it counts as wrong).

        Raises:
            ConfigError: channels or input size differ, or the model has too few outputs.
        """
        args = self.arguments
        if isinstance(data, TokenDataset):  # token ids: the model's positions and vocabulary hold them
            length = int(data.ids.shape[1])
            fits = args.get("input_size", length) >= length and args.get("vocab_size", data.vocab_size) >= (
                data.vocab_size
            )
            shape = f"{length} tokens of a {data.vocab_size}-word vocabulary"
        else:
            c, h, _ = data.input_shape
            fits = args.get("in_channels", c) == c and args.get("input_size", h) == h
            shape = f"{c}x{h}x{h}"
        if not fits or args.get("num_classes", data.num_classes) < data.num_classes:
            raise ConfigError(
                f"the model ({self.architecture} {args}) does not fit data set {data.name} "
                f"({shape}, {data.num_classes} classes)"
            )


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
    made_by: str = "checkpoint",
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
        force: replace an existing ``path``, if it was made by the same ``made_by``.
        made_by: the command named in the folder's marker (``--force`` of another command
            does not replace it).

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False, or it was not made by
            ``made_by``.
    """
    with atomic_directory(path, force=force, made_by=made_by) as tmp:
        write_checkpoint(
            model, tmp, architecture=architecture, arguments=arguments, dataset=dataset, locked=locked, record=record
        )
    return Path(path)


def save_like(
    like: Checkpoint,
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    locked: bool = False,
    dataset: str | None = None,
    record: dict[str, Any] | None = None,
    force: bool = False,
    made_by: str = "checkpoint",
) -> Path:
    """Writes ``model`` at ``path`` (atomically) as the same kind of folder as ``like``
    (:meth:`Checkpoint.write`); ``force`` and ``made_by`` as in :func:`save_checkpoint`."""
    with atomic_directory(path, force=force, made_by=made_by) as tmp:
        like.write(model, tmp, locked=locked, dataset=dataset, record=record)
    return Path(path)


def write_checkpoint(
    model: nn.Module,
    folder: Path,
    *,
    architecture: str,
    arguments: dict[str, Any],
    dataset: str | None = None,
    locked: bool = False,
    record: dict[str, Any] | None = None,
) -> None:
    """Writes the checkpoint's files into the existing, empty ``folder`` (not atomic by
    itself: :func:`save_checkpoint` and :func:`advparams.keys.save_locked` move it into place)."""
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
    _check_arguments(meta["arguments"], Path(folder) / META)
    save_file(state, str(Path(folder) / WEIGHTS), metadata={"format": CHECKPOINT_FORMAT})
    (Path(folder) / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


MAX_ARGUMENTS = 64  # keyword arguments in model.json
MAX_ARGUMENT_INT = 2**31


def _check_arguments(arguments: Any, where: Path) -> dict[str, Any]:
    """Model arguments are JSON scalars within bounds, checked before anything is built."""
    if not isinstance(arguments, dict):
        raise CheckpointError(f"{where}: 'arguments' must be an object")
    if len(arguments) > MAX_ARGUMENTS:
        raise CheckpointError(f"{where}: more than {MAX_ARGUMENTS} model arguments")
    for k, v in arguments.items():
        what = f"{where}: argument {k[:40]!r}"
        if len(k) > 100 or not k.isidentifier():
            raise CheckpointError(f"{what} is not a keyword name")
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int):
            integer(v, what=what, lo=-MAX_ARGUMENT_INT, hi=MAX_ARGUMENT_INT, error=CheckpointError)
        elif isinstance(v, float):
            number(v, what=what, error=CheckpointError)
        elif isinstance(v, str):
            string(v, what=what, max_len=200, error=CheckpointError)
        else:
            raise CheckpointError(f"{what} must be a number, string, boolean or null")
    return dict(arguments)


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads and checks a checkpoint's ``model.json`` (a bounded regular file; every field
    that rebuilding the model uses is checked for type and range)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    if not p.is_dir():
        raise CheckpointError(f"{p} is not a checkpoint folder (expected a folder with {META} and {WEIGHTS})")
    if not (p / META).exists() and not (p / META).is_symlink():
        raise CheckpointError(f"checkpoint {p} has no {META}")
    data = read_file(
        p / META, what="checkpoint description", limit=LIMITS["checkpoint-description"], error=CheckpointError
    )
    meta = parse_json(data, what=str(p / META), error=CheckpointError)
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p / META} is not an advparams checkpoint description")
    if meta.get("version") != CHECKPOINT_VERSION or isinstance(meta.get("version"), bool):
        raise CheckpointError(
            f"checkpoint version {str(meta.get('version'))[:20]!r} is not supported (this is {CHECKPOINT_VERSION})"
        )
    for name in ("architecture", "arguments", "fingerprint"):
        if name not in meta:
            raise CheckpointError(f"{p / META} lacks {name!r}")
    string(meta["architecture"], what=f"{p / META}: architecture", max_len=200, error=CheckpointError)
    string(meta["fingerprint"], what=f"{p / META}: fingerprint", max_len=200, error=CheckpointError)
    if meta.get("dataset") is not None:
        string(meta["dataset"], what=f"{p / META}: dataset", max_len=200, error=CheckpointError)
    if str(meta.get("dtype", "float32")) not in _DTYPES:
        raise CheckpointError(f"{p / META}: unsupported dtype {str(meta.get('dtype'))[:40]!r}")
    meta["arguments"] = _check_arguments(meta["arguments"], p / META)
    return meta


def read_description(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a folder says of its model without loading it: an advparams checkpoint's
    checked ``model.json``, or for a Hugging Face folder the same fields from its
    ``config.json`` and ``advparams.json`` (``architecture`` ``hf:<class>``, ``arguments``
    as :func:`advparams.huggingface.folder.model_arguments`, ``dataset``, ``locked`` and
    ``fingerprint``, the last ``None`` when the toolkit did not write the folder)."""
    from advparams.huggingface.common import read_json
    from advparams.huggingface.folder import CONFIG, HF_PREFIX, is_hf_folder, model_arguments, model_class, read_state

    p = Path(path)
    if not is_hf_folder(p):
        return read_meta(p)
    config = read_json(p / CONFIG, "model config")
    state = read_state(p)
    return {
        "format": "huggingface",
        "architecture": HF_PREFIX + model_class(p, config).__name__,
        "arguments": model_arguments(config),
        "dataset": state.get("dataset"),
        "locked": bool(state.get("locked", False)),
        "fingerprint": state.get("fingerprint"),
    }


def recorded_fingerprint(path: str | os.PathLike[str]) -> str:
    """The weights' fingerprint a folder records (:func:`read_description`).

    Raises:
        CheckpointError: the folder records none (a Hugging Face folder the toolkit did
            not write).
    """
    fingerprint = read_description(path).get("fingerprint")
    if not fingerprint:
        raise CheckpointError(f"{path} has no advparams.json: it was not written by advparams")
    return str(fingerprint)


def _state_bytes(architecture: str, arguments: dict[str, Any], dtype: torch.dtype, where: Path) -> int:
    """Bytes of the state the arguments describe, counted on the meta device (nothing allocated)."""
    try:
        with torch.device("meta"):
            model = MODELS.build(architecture, arguments).to(dtype)
        return sum(t.numel() * t.element_size() for t in model.state_dict().values())
    except ConfigError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    except AdvParamsError:
        raise
    except (TypeError, ValueError, RuntimeError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"cannot rebuild {architecture!r} from {where}: {str(exc)[:200]}") from None


def load_checkpoint(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Checkpoint:
    """Loads a checkpoint folder, rebuilding the model and checking its fingerprint; a
    Hugging Face folder (``config.json`` and safetensors weights) is read through
    ``transformers`` (:func:`advparams.huggingface.folder.load_hf_folder`).

    The model's size is worked out from its arguments on the meta device first: a
    description that asks for more bytes than the weights file holds is refused before
    any memory is allocated.

    Raises:
        CheckpointError: missing, truncated, corrupt or inconsistent checkpoint.
        UnknownNameError: the architecture is not registered.
    """
    p = Path(path)
    from advparams.huggingface.folder import is_hf_folder

    if is_hf_folder(p):
        return _load_huggingface(p, device)
    meta = read_meta(p)
    MODELS.get(meta["architecture"])
    dtype = _DTYPES[str(meta.get("dtype", "float32"))]
    if not (p / WEIGHTS).exists() and not (p / WEIGHTS).is_symlink():
        raise CheckpointError(f"checkpoint {p} has no {WEIGHTS}")
    size = check_regular(
        p / WEIGHTS, what="checkpoint weights", limit=LIMITS["checkpoint-weights"], error=CheckpointError
    )
    need = _state_bytes(meta["architecture"], meta["arguments"], dtype, p / META)
    if need > size:
        raise CheckpointError(
            f"{p / META} describes a model of {need} bytes, but {p / WEIGHTS} holds only {size}: "
            "the weights are truncated or corrupt, or belong to another model"
        )
    try:
        model = MODELS.build(meta["architecture"], meta["arguments"])
    except AdvParamsError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot rebuild {meta['architecture']!r} from {p / META}: {str(exc)[:200]}") from None
    model = model.to(dtype)
    try:
        state = load_file(str(p / WEIGHTS))
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


def _load_huggingface(path: Path, device: str | torch.device) -> Checkpoint:
    from advparams.huggingface.folder import load_hf_folder, model_arguments

    model, meta = load_hf_folder(path, device=device)
    return Checkpoint(model, meta["architecture"], model_arguments(meta["config"]), meta.get("dataset"), meta)
