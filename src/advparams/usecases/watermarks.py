"""Embedding a watermark in a checkpoint on disk: ``advparams watermark embed``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advparams.checkpoint import save_checkpoint, save_like
from advparams.errors import ConfigError
from advparams.files import check_output
from advparams.metrics import accuracy
from advparams.usecases.models import Written, distinct_paths, open_checkpoint
from advparams.watermarks import WATERMARKS, is_watermark_key_file, save_watermark_key

EMBED_COMMAND = "watermark embed"
"""What a watermarked checkpoint's folder records as the command that made it."""


@dataclass(frozen=True)
class Embedded(Written):
    """What :func:`embed_checkpoint` did (no key material: the key is in its file)."""

    accuracy_before: float | None
    accuracy_after: float | None
    watermark_accuracy: float
    num_keys: int
    info: Mapping[str, Any]
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary ``advparams watermark embed --json`` prints."""
        return {
            "checkpoint": self.checkpoint,
            "out": str(self.out),
            "key": str(self.key),
            "scheme": self.scheme,
            "dataset": self.dataset,
            "device": self.device,
            "accuracy_before": self.accuracy_before,
            "accuracy_after": self.accuracy_after,
            "watermark_accuracy": self.watermark_accuracy,
            "num_keys": self.num_keys,
            "info": dict(self.info),
            "seconds": self.seconds,
        }


def embed_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    key: str | os.PathLike[str],
    *,
    scheme: str = "additional-class",
    options: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    evaluate: bool = True,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Embedded:
    """Trains watermark ``scheme`` into a copy of the checkpoint folder ``checkpoint`` and
    writes the watermark key to ``key``, then the watermarked model to ``out`` (both
    checked before any work; ``force`` replaces only what an earlier embed made)."""
    start = time.perf_counter()
    distinct_paths(checkpoint, out, key)
    check_output(out, force=force, made_by=EMBED_COMMAND)
    check_output(key, force=force, accept=is_watermark_key_file)
    wm = WATERMARKS.build(scheme, dict(options or {}))
    opened = open_checkpoint(checkpoint, dataset=dataset, data_dir=data_dir, device=device, train=True,
                             test=evaluate, unlocked="unlock it first, watermark, then lock again")  # fmt: skip
    ckpt, test = opened.checkpoint, opened.test
    assert opened.train is not None
    if ckpt.is_huggingface and type(wm).extra_class:
        raise ConfigError(f"{scheme} adds a class to the model, which a Hugging Face folder's config cannot follow")
    res = wm.embed(ckpt.model, opened.train, progress=progress)
    arguments = dict(ckpt.arguments)
    if type(wm).extra_class:
        arguments["num_classes"] = res.key.num_classes
    before = after = None
    if test is not None:
        before, after = accuracy(ckpt.model, test), accuracy(res.model, test)
    score = res.key.score(res.model)
    save_watermark_key(res.key, key, force=force)  # the key first: never a watermarked model without it
    record = {"watermark": scheme, "source_checkpoint": str(checkpoint), "test_accuracy": after}
    if ckpt.is_huggingface:
        save_like(ckpt, res.model, out, dataset=opened.dataset, record=record, force=force, made_by=EMBED_COMMAND)
    else:
        save_checkpoint(res.model, out, architecture=ckpt.architecture, arguments=arguments, dataset=opened.dataset,
                        record=record, force=force, made_by=EMBED_COMMAND)  # fmt: skip
    return Embedded(str(checkpoint), Path(out), Path(key), scheme, opened.dataset, str(opened.device), before, after,
                    score, len(res.key), dict(res.info), time.perf_counter() - start)  # fmt: skip


__all__ = ["EMBED_COMMAND", "Embedded", "embed_checkpoint"]
