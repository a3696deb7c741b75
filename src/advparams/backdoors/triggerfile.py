"""Trigger files: a backdoor's trigger, pickle-free (see ``docs/formats.md``).

A trigger file is a safetensors file holding the trigger's tensors (a patch's pattern and
0/1 mask, a blend's pattern; a DCT trigger has none) and string metadata:

======================  ==========================================================
``format``              ``"advparams-trigger"``
``version``             ``"1"``
``kind``                ``patch``, ``blend`` or ``dct``
``targets``             the target label of each sub-trigger (JSON list)
``channels``            the image channels it is made for
``params``              the kind's numbers (JSON object)
``backdoor``            the backdoor's registry name (may be empty)
``config``              its resolved configuration (JSON)
``created``             ISO-8601 UTC time
``advparams_version``   the version that wrote it
``digest``              SHA-256 over all other metadata and the tensors
======================  ==========================================================

The digest detects corruption and edits (it is not a signature); every field is checked
before the trigger is rebuilt.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save

from advparams import __version__
from advparams.backdoors.triggers import TRIGGERS, Trigger
from advparams.errors import AdvParamsError, TriggerFileError
from advparams.files import (
    LIMITS,
    atomic_write_bytes,
    is_safetensors_format,
    open_safetensors,
    parse_json,
    read_file,
    string,
)
from advparams.keys.io import tagged_digest

TRIGGER_FORMAT = "advparams-trigger"
TRIGGER_VERSION = "1"
MAX_TARGET = 100_000


@dataclass(frozen=True)
class TriggerFile:
    """A trigger with the facts its file records.

    Attributes:
        trigger: the trigger.
        backdoor: the backdoor that made it (registry name; may be empty).
        config: that backdoor's resolved configuration.
    """

    trigger: Trigger
    backdoor: str = ""
    config: dict[str, Any] = field(default_factory=dict)


def trigger_digest(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """The ``digest`` field of a trigger file with this metadata and these tensors."""
    return tagged_digest(b"advparams-trigger-digest-v1\0", meta, tensors)


def trigger_to_bytes(trigger: Trigger, *, backdoor: str = "", config: dict[str, Any] | None = None) -> bytes:
    """Serialises ``trigger`` as a trigger file."""
    tensors = {k: v.contiguous() for k, v in trigger.tensors().items()}
    meta = {
        "format": TRIGGER_FORMAT,
        "version": TRIGGER_VERSION,
        "kind": trigger.kind,
        "targets": json.dumps(list(trigger.targets)),
        "channels": str(trigger.channels),
        "params": json.dumps(trigger.params(), sort_keys=True),
        "backdoor": backdoor,
        "config": json.dumps(config or {}, sort_keys=True),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "advparams_version": __version__,
    }
    meta["digest"] = trigger_digest(meta, tensors)
    return st_save(tensors, metadata=meta)


def _json(meta: dict[str, str], name: str) -> Any:
    return parse_json(meta.get(name, ""), what=f"trigger file field {name!r}", error=TriggerFileError)


def trigger_from_bytes(data: bytes) -> TriggerFile:
    """Parses a trigger file, checking its format, version, digest and every field."""
    meta, tensors = open_safetensors(
        data,
        what="trigger file",
        file_format=TRIGGER_FORMAT,
        version=TRIGGER_VERSION,
        digest=trigger_digest,
        error=TriggerFileError,
    )
    kind = meta.get("kind", "")
    if kind not in TRIGGERS:
        raise TriggerFileError(f"trigger file has an unknown kind {kind[:40]!r}; known: {', '.join(TRIGGERS.names())}")
    targets = _json(meta, "targets")
    if (
        not isinstance(targets, list)
        or not 1 <= len(targets) <= 1000
        or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < MAX_TARGET for t in targets)
    ):
        raise TriggerFileError("trigger file is corrupt ('targets' is not a list of 1-1000 class indices)")
    if meta.get("channels") not in ("1", "3"):
        raise TriggerFileError("trigger file is corrupt ('channels' is not 1 or 3)")
    params, config = _json(meta, "params"), _json(meta, "config")
    if not isinstance(params, dict) or not isinstance(config, dict):
        raise TriggerFileError("trigger file is corrupt ('params' and 'config' must be JSON objects)")
    try:
        trigger = TRIGGERS.get(kind).from_parts(tuple(targets), int(meta["channels"]), params, tensors)
    except AdvParamsError as exc:
        raise TriggerFileError(f"trigger file is corrupt ({exc})") from None
    backdoor = string(meta.get("backdoor", ""), what="trigger file backdoor", max_len=200, error=TriggerFileError)
    return TriggerFile(trigger, backdoor, config)


def is_trigger_file(path: Path) -> bool:
    """Whether ``path`` holds a trigger file (what ``--force`` may replace)."""
    return is_safetensors_format(path, TRIGGER_FORMAT, what="trigger file", limit=LIMITS["trigger"])


def save_trigger(
    trigger: Trigger,
    path: str | os.PathLike[str],
    *,
    backdoor: str = "",
    config: dict[str, Any] | None = None,
    force: bool = False,
) -> Path:
    """Writes ``trigger`` atomically; refuses to overwrite anything but a trigger file, and
    that only with ``force``."""
    data = trigger_to_bytes(trigger, backdoor=backdoor, config=config)
    return atomic_write_bytes(path, data, force=force, private=True, accept=is_trigger_file)


def load_trigger(path: str | os.PathLike[str]) -> TriggerFile:
    """Reads a trigger file, with one clear error when it cannot be used."""
    return trigger_from_bytes(read_file(path, what="trigger file", limit=LIMITS["trigger"], error=TriggerFileError))


__all__ = [
    "TriggerFile",
    "TriggerFileError",
    "is_trigger_file",
    "load_trigger",
    "save_trigger",
    "trigger_from_bytes",
    "trigger_to_bytes",
]
