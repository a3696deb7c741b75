"""The names a Hugging Face model's weights have in its files (imports nothing of the
toolkit, so that fingerprints can use it)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def file_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights under the names its files use: ``transformers`` renames some
    on load (and names them back on save), and writes a tied weight once."""
    state = {k: v.detach() for k, v in model.state_dict().items()}
    try:
        from transformers.core_model_loading import revert_weight_conversion
        from transformers.modeling_utils import remove_tied_weights_from_state_dict
    except ImportError:  # transformers 4: file names are the state's names
        return state
    hf: Any = model
    return dict(revert_weight_conversion(hf, remove_tied_weights_from_state_dict(state, hf)))


__all__ = ["file_state"]
