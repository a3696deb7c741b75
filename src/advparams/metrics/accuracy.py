"""Classification accuracy and related quantities."""

from __future__ import annotations

import torch
from torch import nn

from advparams.data.base import DataLike, iter_batches
from advparams.devices import model_device, model_float_dtype
from advparams.errors import AdvParamsError


def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Runs ``model`` on ``x`` and checks that it returns ``[N, C]`` class scores."""
    out = model(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise AdvParamsError(f"the model must return class scores of shape [N, C]; it returned {shape}")
    return out


@torch.no_grad()
def predict(model: nn.Module, data: DataLike, *, batch_size: int = 1000) -> torch.Tensor:
    """Predicted class of every sample of ``data`` (on CPU), with ``model`` in eval mode.

    The model's train/eval mode is restored afterwards; the model is not moved.
    """
    device, dtype = model_device(model), model_float_dtype(model)
    was_training = model.training
    model.eval()
    try:
        preds = [
            logits_of(model, x.to(device=device, dtype=dtype)).argmax(1).cpu()
            for x, _ in iter_batches(data, batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, data: DataLike, *, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` on ``data``, in [0, 1].

    Example:
        >>> from advparams.testing import ConstantClassifier
        >>> x, y = torch.zeros(4, 3), torch.tensor([0, 1, 1, 1])
        >>> accuracy(ConstantClassifier(num_classes=2, label=1), (x, y))
        0.75
    """
    labels = torch.cat([y.cpu() for _, y in iter_batches(data, batch_size)])
    if labels.numel() == 0:
        raise AdvParamsError("cannot measure accuracy on an empty data set")
    preds = predict(model, data, batch_size=batch_size)
    return float((preds == labels).float().mean())


def chance_level(num_classes: int) -> float:
    """Accuracy of uniform guessing over ``num_classes`` classes."""
    return 1.0 / num_classes
