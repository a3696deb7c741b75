"""What the Hugging Face modules share: bounded JSON files of a folder, transformers
imported with a clear error, and its own progress bars and notes kept quiet."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from advparams.errors import AdvParamsError, CheckpointError
from advparams.files import LIMITS, parse_json, read_file, register_limit

register_limit("hf-config", 4 * 1024**2)  # config.json, preprocessor_config.json, advparams.json
register_limit("hf-index", 64 * 1024**2)  # model.safetensors.index.json (one line per tensor)


def read_json(path: Path, what: str, limit: str = "hf-config") -> dict[str, Any]:
    """A bounded JSON object from a regular file of the folder."""
    data = read_file(path, what=what, limit=LIMITS[limit], error=CheckpointError)
    value = parse_json(data, what=str(path), error=CheckpointError)
    if not isinstance(value, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    return value


def transformers_module() -> Any:
    try:
        import transformers
    except ImportError:
        raise AdvParamsError(
            "reading a Hugging Face folder needs transformers: pip install 'advparams[huggingface]'"
        ) from None
    return transformers


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """transformers' progress bars and notes off (the command line prints its own)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


__all__ = ["quiet", "read_json", "transformers_module"]
