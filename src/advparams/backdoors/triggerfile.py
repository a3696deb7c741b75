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
before the trigger is rebuilt. The metadata and the tensors' declared shapes are checked
from the header, before the tensors are copied or the digest computed, and every JSON
field is parsed with a cap on its values counted before parsing (:data:`MAX_TARGETS`,
:data:`MAX_PARAMS_VALUES`, :data:`MAX_CONFIG_VALUES`): a file of seven million targets
costs a scan of its header, not seven million Python integers.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from advparams.backdoors.triggers import TRIGGERS, DCTTrigger, Trigger
from advparams.errors import AdvParamsError, TriggerFileError
from advparams.files import (
    SecretFormat,
    TensorSpec,
    parse_json,
    register_limit,
    string,
)

register_limit("trigger", 64 * 1024**2)  # a backdoor trigger file (a pattern the size of one image, or numbers)

TRIGGER_FORMAT = "advparams-trigger"
TRIGGER_VERSION = "1"
FORMAT = SecretFormat(TRIGGER_FORMAT, TRIGGER_VERSION, "trigger file", "trigger", TriggerFileError)
"""The file format (:class:`advparams.files.SecretFormat`)."""
MAX_TARGET = 100_000
"""Target labels are class indices below this."""
MAX_TARGETS = 1000
"""The most sub-triggers (target labels) a trigger file holds."""
MAX_PARAMS_VALUES = 100_000
"""The most JSON values of the ``params`` field (a DCT trigger's positions and payloads)."""
MAX_CONFIG_VALUES = 10_000
"""The most JSON values of the ``config`` field (the backdoor's resolved options)."""
MAX_TRIGGER_SIDE = 4096
"""The largest side of a trigger's pattern or mask (the largest image ``backdoor apply`` reads)."""
MAX_PAYLOAD_BITS = 4096
"""The most payload bits of one DCT sub-trigger."""
TENSOR_NAMES = ("pattern", "mask")
"""The tensors any trigger kind may hold (each kind checks which of them it needs)."""


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
    return FORMAT.digest(meta, tensors)


def trigger_to_bytes(trigger: Trigger, *, backdoor: str = "", config: dict[str, Any] | None = None) -> bytes:
    """Serialises ``trigger`` as a trigger file."""
    tensors = {k: v.contiguous() for k, v in trigger.tensors().items()}
    meta = {
        "kind": trigger.kind,
        "targets": json.dumps(list(trigger.targets)),
        "channels": str(trigger.channels),
        "params": json.dumps(trigger.params(), sort_keys=True),
        "backdoor": backdoor,
        "config": json.dumps(config or {}, sort_keys=True),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return FORMAT.encode(tensors, meta)


def _json(meta: dict[str, str], name: str, max_values: int) -> Any:
    return parse_json(
        meta.get(name, ""), what=f"trigger file field {name!r}", error=TriggerFileError, max_nodes=max_values
    )


def _check_header(meta: dict[str, str], specs: dict[str, TensorSpec]) -> None:
    """The tensors' names, dtypes and shapes as the header declares them (uint8 ``[C, h, w]``
    patterns of the file's channels, uint8 ``[h, w]`` masks, sides at most
    :data:`MAX_TRIGGER_SIDE`), before any is copied."""
    channels = int(meta["channels"])
    for name, spec in specs.items():
        shape = spec.shape
        if (
            name not in TENSOR_NAMES
            or spec.dtype != "U8"
            or len(shape) != (3 if name == "pattern" else 2)
            or (name == "pattern" and shape[0] != channels)
            or not all(1 <= side <= MAX_TRIGGER_SIDE for side in shape[-2:])
        ):
            raise TriggerFileError(
                f"trigger file is corrupt (tensor {name[:40]!r} is {spec.dtype} {list(shape)[:8]}; a trigger holds "
                f"uint8 pattern [{channels}, h, w] and mask [h, w] with sides in [1, {MAX_TRIGGER_SIDE}])"
            )


def _fields(meta: dict[str, str]) -> tuple[str, tuple[int, ...], dict[str, Any], dict[str, Any]]:
    """The metadata fields, checked before the tensors are read: kind, targets, channels,
    params and config."""
    kind = meta.get("kind", "")
    if kind not in TRIGGERS:
        raise TriggerFileError(f"trigger file has an unknown kind {kind[:40]!r}; known: {', '.join(TRIGGERS.names())}")
    bad_targets = (
        f"trigger file is corrupt ('targets' is not a list of 1-{MAX_TARGETS} class indices below {MAX_TARGET})"
    )
    try:
        targets = _json(meta, "targets", MAX_TARGETS + 1)
    except TriggerFileError as exc:
        raise TriggerFileError(f"{bad_targets}: {exc}") from None
    if (
        not isinstance(targets, list)
        or not 1 <= len(targets) <= MAX_TARGETS
        or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < MAX_TARGET for t in targets)
    ):
        raise TriggerFileError(bad_targets)
    if meta.get("channels") not in ("1", "3"):
        raise TriggerFileError("trigger file is corrupt ('channels' is not 1 or 3)")
    params, config = _json(meta, "params", MAX_PARAMS_VALUES), _json(meta, "config", MAX_CONFIG_VALUES)
    if not isinstance(params, dict) or not isinstance(config, dict):
        raise TriggerFileError("trigger file is corrupt ('params' and 'config' must be JSON objects)")
    return kind, tuple(targets), params, config


def _check_dct(trigger: DCTTrigger) -> None:
    """A DCT sub-trigger's coefficients are distinct and its payload at most
    :data:`MAX_PAYLOAD_BITS` bits: stamping an image then costs at most a few passes over its
    pixels, whatever the file says (repeated coefficients would multiply the work)."""
    for i, (positions, bits) in enumerate(zip(trigger.positions, trigger.payloads, strict=True)):
        if len(set(positions)) != len(positions):
            raise TriggerFileError(f"trigger file is corrupt (DCT sub-trigger {i} names a coefficient twice)")
        if len(bits) > MAX_PAYLOAD_BITS:
            raise TriggerFileError(
                f"trigger file is corrupt (DCT sub-trigger {i} has {len(bits)} payload bits; "
                f"at most {MAX_PAYLOAD_BITS})"
            )


def trigger_from_bytes(data: bytes) -> TriggerFile:
    """Parses a trigger file, checking its format, version, fields, declared tensor shapes,
    digest and values, in the order that costs least."""
    fields: list[Any] = []

    def check(meta: dict[str, str], specs: dict[str, TensorSpec]) -> None:
        fields.extend(_fields(meta))
        _check_header(meta, specs)

    meta, tensors = FORMAT.decode(data, check=check)
    kind, targets, params, config = fields
    try:
        trigger = TRIGGERS.get(kind).from_parts(targets, int(meta["channels"]), params, tensors)
    except AdvParamsError as exc:
        raise TriggerFileError(f"trigger file is corrupt ({exc})") from None
    if isinstance(trigger, DCTTrigger):
        _check_dct(trigger)
    backdoor = string(meta.get("backdoor", ""), what="trigger file backdoor", max_len=200, error=TriggerFileError)
    return TriggerFile(trigger, backdoor, config)


def is_trigger_file(path: Path) -> bool:
    """Whether ``path`` holds a trigger file (what ``--force`` may replace)."""
    return FORMAT.is_file(path)


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
    return FORMAT.write(path, data, force=force)


def load_trigger(path: str | os.PathLike[str]) -> TriggerFile:
    """Reads a trigger file, with one clear error when it cannot be used."""
    return trigger_from_bytes(FORMAT.read(path))


__all__ = [
    "FORMAT",
    "MAX_CONFIG_VALUES",
    "MAX_PARAMS_VALUES",
    "MAX_PAYLOAD_BITS",
    "MAX_TARGET",
    "MAX_TARGETS",
    "MAX_TRIGGER_SIDE",
    "TriggerFile",
    "TriggerFileError",
    "is_trigger_file",
    "load_trigger",
    "save_trigger",
    "trigger_from_bytes",
    "trigger_to_bytes",
]
