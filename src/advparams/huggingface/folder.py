"""Hugging Face model folders read as models and written back in the same layout.

A Hugging Face folder is what ``save_pretrained`` writes: ``config.json``, the weights as
``model.safetensors`` or as shards named by ``model.safetensors.index.json``, and the
files that go with the model (tokenizer, image processor, generation config, model card).
It is read through ``transformers``' own class named by the config (offline; never remote
code, never a pickled ``pytorch_model.bin``) and checked: every shard present, a regular
file within the size limit, every weight of the model found.

A folder the toolkit writes (a locked, unlocked or marked model) keeps the source's layout:
the same shards holding the same tensor names with their safetensors metadata, the index
file and every non-weight file copied byte for byte, and one more file, ``advparams.json``,
that says whether the weights are locked and holds their fingerprint, so that an edit is
detected on load. ``from_pretrained`` reads such a folder as it reads the source. Weights in
other formats (``pytorch_model.bin``, ``tf_model.h5``, ...) are never copied: next to a
locked model they would ship the open weights.

Tied weights (an output layer sharing the input embedding) are one tensor in memory and one
in the file; the weights are written under the names ``transformers`` itself writes
(:func:`file_state`), and every one of them must be in the source's files, so that a
written folder never breaks a tie nor drops a weight.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advparams.errors import CheckpointError
from advparams.files import LIMITS, MARKER, check_regular, string
from advparams.fingerprint import fingerprint_like, model_fingerprint
from advparams.huggingface.common import quiet, read_json, transformers_module
from advparams.huggingface.names import file_state
from advparams.version import __version__

logger = logging.getLogger(__name__)

CONFIG = "config.json"
SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
STATE = "advparams.json"
STATE_FORMAT = "advparams-hf-folder"
STATE_VERSION = 1
HF_PREFIX = "hf:"
"""Architecture names of Hugging Face models read from a folder: ``hf:<transformers class>``."""


_SHARD_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}\.safetensors$")
OTHER_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".onnx", ".npz", ".pkl", ".safetensors")
_NEVER_COPIED = {STATE, MARKER}


def is_hf_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder with a ``config.json`` and no advparams ``model.json``."""
    p = Path(path)
    return p.is_dir() and (p / CONFIG).exists() and not (p / "model.json").exists()


def weight_files(folder: str | os.PathLike[str]) -> list[str]:
    """The safetensors files holding the folder's weights, in the index's order, each
    checked to be a regular file within the weights' size limit.

    Raises:
        CheckpointError: no safetensors weights, a malformed index, or a missing shard.
    """
    p = Path(folder)
    if (p / INDEX).exists():
        index = read_json(p / INDEX, "weights index", "hf-index")
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{p / INDEX} has no 'weight_map'")
        names: list[str] = []
        for tensor, shard in weight_map.items():
            if not isinstance(shard, str) or not _SHARD_NAME.match(shard) or shard.startswith("."):
                raise CheckpointError(f"{p / INDEX}: tensor {str(tensor)[:80]!r} names a bad shard {str(shard)[:80]!r}")
            if shard not in names:
                names.append(shard)
    elif (p / SINGLE).exists() or (p / SINGLE).is_symlink():
        names = [SINGLE]
    else:
        other = sorted(f.name for f in p.iterdir() if f.name.endswith(OTHER_WEIGHTS))[:3]
        hint = f" (it holds {', '.join(other)}: only safetensors weights are read, never pickles)" if other else ""
        raise CheckpointError(f"{p} holds no {SINGLE} and no {INDEX}{hint}")
    for name in names:
        if not (p / name).exists():
            raise CheckpointError(f"{p}: shard {name} named by {INDEX} is missing")
        check_regular(p / name, what="model weights", limit=LIMITS["checkpoint-weights"], error=CheckpointError)
    return names


def model_class(folder: Path, config: dict[str, Any]) -> type[nn.Module]:
    """The ``transformers`` class that ``config.json`` names (``architectures``)."""
    if "auto_map" in config:
        raise CheckpointError(f"{folder / CONFIG} asks for the model's own code (auto_map): it is never run")
    names = config.get("architectures")
    if not isinstance(names, list) or len(names) != 1:
        raise CheckpointError(f"{folder / CONFIG} must name one class in 'architectures'")
    name = string(names[0], what=f"{folder / CONFIG}: architectures[0]", max_len=100, error=CheckpointError)
    transformers = transformers_module()
    cls = getattr(transformers, name, None) if name.isidentifier() else None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise CheckpointError(f"{folder / CONFIG} names {name!r}, which is not a transformers model class")
    return cls


def read_state(folder: Path) -> dict[str, Any]:
    """The folder's ``advparams.json`` (empty when the folder has none: a plain folder)."""
    if not (folder / STATE).exists():
        return {}
    state = read_json(folder / STATE, "advparams folder record")
    if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{folder / STATE} is not an advparams folder record of version {STATE_VERSION}")
    string(state.get("fingerprint"), what=f"{folder / STATE}: fingerprint", max_len=200, error=CheckpointError)
    if state.get("dataset") is not None:
        string(state["dataset"], what=f"{folder / STATE}: dataset", max_len=200, error=CheckpointError)
    if not isinstance(state.get("locked"), bool):
        raise CheckpointError(f"{folder / STATE}: 'locked' must be true or false")
    return state


def load_hf_folder(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Loads a Hugging Face folder: the model (eval mode) and the facts a checkpoint's
    ``meta`` holds (``format``, ``architecture``, ``locked``, ``dataset``, ``config``).

    Raises:
        CheckpointError: a missing or malformed file, a missing shard, weights that do not
            fit the class, or weights that differ from the fingerprint the toolkit wrote.
    """
    p = Path(path)
    config = read_json(p / CONFIG, "model config")
    cls = model_class(p, config)
    weight_files(p)
    state = read_state(p)
    with quiet():
        try:
            model, info = cls.from_pretrained(  # type: ignore[attr-defined]
                str(p), local_files_only=True, use_safetensors=True, trust_remote_code=False,
                output_loading_info=True, dtype="auto",
            )  # fmt: skip
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{p}: the weights do not load ({type(exc).__name__}: {str(exc)[:200]})") from None
    missing = sorted(info.get("missing_keys") or [])
    mismatched = sorted(info.get("mismatched_keys") or [])
    if missing or mismatched:
        raise CheckpointError(f"{p}: the weights do not fit {cls.__name__}: missing {(missing + mismatched)[:3]}")
    model.eval()
    pad = config.get("pad_token_id")
    if getattr(model, "main_input_name", "") == "input_ids" and isinstance(pad, int) and not isinstance(pad, bool):
        from advparams.huggingface.data import attend_to_tokens

        attend_to_tokens(model, pad)
    if state and fingerprint_like(model, state["fingerprint"]) != state["fingerprint"]:
        raise CheckpointError(f"{p}: the weights do not match the fingerprint in {STATE}: corrupt or edited")
    meta = {
        "format": "huggingface",
        "architecture": HF_PREFIX + cls.__name__,
        "locked": bool(state.get("locked", False)),
        "dataset": state.get("dataset"),
        "fingerprint": state["fingerprint"] if state else model_fingerprint(model),
        "config": config,
        "folder": str(p),
        "record": state.get("record", {}),
    }
    return model.to(device), meta


def write_hf_folder(
    model: nn.Module,
    folder: str | os.PathLike[str],
    source: str | os.PathLike[str],
    *,
    locked: bool = False,
    dataset: str | None = None,
    record: dict[str, Any] | None = None,
) -> None:
    """Writes ``model``'s weights into the existing, empty ``folder`` in the layout of the
    Hugging Face folder ``source`` (same shards, names and metadata), with every non-weight
    file of ``source`` copied unchanged and ``advparams.json`` beside them. Not atomic by
    itself: callers write into a staging folder that is moved into place.

    Raises:
        CheckpointError: ``model`` does not fit ``source``'s weights, or a weight of the
            model is in no shard and shares no storage with one that is (a broken tie).
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    src, dst = Path(source), Path(folder)
    shards = weight_files(src)
    state = file_state(model)
    written: set[str] = set()
    for shard in shards:
        with safe_open(str(src / shard), framework="pt") as f:  # type: ignore[no-untyped-call]
            meta = f.metadata()
            tensors = {}
            for name in f.keys():  # noqa: SIM118  (a safetensors file, not a dict)
                old = f.get_slice(name)
                new = state.get(name)
                if new is None:  # a tensor the class does not use: kept as it was
                    tensors[name] = f.get_tensor(name)
                    continue
                if list(new.shape) != list(old.get_shape()) or _dtype_tag(new.dtype) != old.get_dtype():
                    raise CheckpointError(f"{src / shard}: {name} is {old.get_dtype()} {old.get_shape()}, "
                                          f"the model's is {new.dtype} {tuple(new.shape)}")  # fmt: skip
                tensors[name] = new.to("cpu").contiguous().clone()
                written.add(name)
        save_file(tensors, str(dst / shard), metadata=meta)
    unwritten = _unwritten(state, written)
    if unwritten:
        raise CheckpointError(
            f"{src}: the model's {unwritten[0]} is in none of the folder's weight files (a weight tied to another "
            "in the config that now differs from it would be lost: tie them again)"
        )
    finish_folder(src, dst, shards, locked=locked, fingerprint=model_fingerprint(model), dataset=dataset,
                  record=record)  # fmt: skip


def finish_folder(
    source: Path,
    dest: Path,
    shards: list[str],
    *,
    locked: bool,
    fingerprint: str,
    dataset: str | None,
    record: dict[str, Any] | None,
) -> None:
    """Copies every file of ``source`` but its weight ``shards`` (and weights in other
    formats, which never travel beside a written model) into ``dest``, and writes the
    folder record ``advparams.json`` with ``fingerprint`` (of the weights written)."""
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        if entry.name in shards or entry.name in _NEVER_COPIED:
            continue
        if entry.name != INDEX and entry.name.endswith(OTHER_WEIGHTS):
            logger.warning("%s: left out of the written folder (weights in another format)", entry.name)
        elif entry.is_file():
            limit = LIMITS["hf-index"] if entry.name == INDEX else LIMITS["checkpoint-weights"]
            check_regular(entry, what="model folder file", limit=limit, error=CheckpointError)
            shutil.copyfile(entry, dest / entry.name)
        else:
            logger.warning("%s: a sub-folder or special file, left out of the written folder", entry.name)
    body = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "locked": locked,
        "fingerprint": fingerprint,
        "dataset": dataset,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "advparams_version": __version__,
        "record": dict(record or {}),
    }
    (dest / STATE).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")


def _unwritten(state: dict[str, torch.Tensor], written: set[str]) -> list[str]:
    """The model's weights that no shard holds, less those equal to a written weight (a
    tie untied in memory with the values unchanged: ``from_pretrained`` ties them again)."""
    out = []
    for name in sorted(set(state) - written):
        t = state[name]
        if not any(state[w].shape == t.shape and torch.equal(state[w], t) for w in written):
            out.append(name)
    return out


LANGUAGE_MODEL_CLASSES = ("ForCausalLM", "LMHeadModel")
"""How the class names of Hugging Face language models end."""


def is_language_model(config: dict[str, Any]) -> bool:
    """Whether ``config.json`` names a language model (a ``...ForCausalLM`` or
    ``...LMHeadModel`` class with a vocabulary)."""
    classes = config.get("architectures") or []
    vocab = config.get("vocab_size")
    if not isinstance(vocab, int) or not isinstance(classes, list):
        return False
    return any(str(a).endswith(LANGUAGE_MODEL_CLASSES) for a in classes)


def model_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint's ``arguments`` say of a Hugging Face model, from its config: the
    number of classes (``num_classes``) and, for image models, ``in_channels`` and
    ``input_size`` (what :meth:`advparams.checkpoint.Checkpoint.check_fits` compares); for
    a language model (a ``...ForCausalLM`` or ``...LMHeadModel`` class) its vocabulary as
    classes and ``vocab_size``, and its positions as ``input_size``."""
    vocab = config.get("vocab_size")
    if is_language_model(config):
        # a language model scores every token of its vocabulary, for as many positions as it has
        out: dict[str, Any] = {"num_classes": vocab, "vocab_size": vocab}
        positions = config.get("n_positions", config.get("max_position_embeddings"))
        if isinstance(positions, int) and not isinstance(positions, bool):
            out["input_size"] = positions
        return out
    labels = config.get("id2label")
    arguments: dict[str, Any] = {"num_classes": len(labels) if isinstance(labels, dict) and labels else 2}
    size = config.get("image_size")
    if isinstance(config.get("num_channels"), int) and isinstance(size, int) and not isinstance(size, bool):
        arguments.update(in_channels=config["num_channels"], input_size=size)
    return arguments


def _dtype_tag(dtype: torch.dtype) -> str:
    tags = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
            torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
            torch.bool: "BOOL"}  # fmt: skip
    return tags.get(dtype, str(dtype))


__all__ = [
    "HF_PREFIX",
    "finish_folder",
    "is_hf_folder",
    "load_hf_folder",
    "model_arguments",
    "weight_files",
    "write_hf_folder",
]
