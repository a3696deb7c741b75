"""Classification accuracy and related quantities."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from advparams.data.base import DataLike, iter_batches
from advparams.devices import model_device, model_float_dtype
from advparams.errors import AdvParamsError, ConfigError

OUTPUT_ADAPTERS = ("auto", "tensor", "logits", "first", "last-token")
"""How a model's output becomes class scores (``model_output``; also ``key:NAME`` and
``index:N``): ``auto`` takes a tensor as it is, an object's ``logits`` attribute (Hugging
Face outputs), a mapping's ``"logits"`` entry, or the first element of a tuple or list;
``tensor`` accepts tensors only; ``logits`` the attribute or entry ``logits``; ``first``
element 0; ``key:NAME`` the mapping entry or attribute NAME; ``index:N`` element N;
``last-token`` reads a language model's next-token scores ``[N, L, V]`` (as ``auto``) at
the last position, ``[N, V]``: the model then answers a prompt with its next token, as a
classifier answers an image (black-box tracing of a language model)."""

_OUTPUT: contextvars.ContextVar[str] = contextvars.ContextVar("advparams_model_output", default="auto")


def check_output_adapter(how: str) -> str:
    """``how`` if it names an output adapter (see :data:`OUTPUT_ADAPTERS`).

    Raises:
        ConfigError: it does not.
    """
    if how in OUTPUT_ADAPTERS or (how.startswith("key:") and len(how) > 4):
        return how
    if how.startswith("index:") and how[6:].isdigit():
        return how
    raise ConfigError(f"unknown model output {how[:40]!r}; known: {', '.join(OUTPUT_ADAPTERS)}, key:NAME, index:N")


@contextlib.contextmanager
def model_output(how: str) -> Iterator[None]:
    """Within this block every class-score read (locks, accuracy, training, studies)
    turns model outputs into scores by ``how`` (default everywhere: ``"auto"``). The model
    itself is not wrapped, so parameter names, and hence keys, stay the module's own.

    Example:
        >>> class Net(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc = nn.Linear(3, 2)
        ...     def forward(self, x):
        ...         return {"scores": self.fc(x), "features": x}
        >>> with model_output("key:scores"):
        ...     logits_of(Net(), torch.zeros(4, 3)).shape
        torch.Size([4, 2])
    """
    token = _OUTPUT.set(check_output_adapter(how))
    try:
        yield
    finally:
        _OUTPUT.reset(token)


def select_logits(out: Any, how: str | None = None) -> Any:
    """The class scores inside a model's output ``out``, by ``how`` (default: the one
    :func:`model_output` set, else ``"auto"``)."""
    how = how or _OUTPUT.get()
    if how == "last-token":
        scores = select_logits(out, "auto")
        return scores[:, -1] if isinstance(scores, torch.Tensor) and scores.dim() == 3 else scores
    if isinstance(out, torch.Tensor) or how == "tensor":
        return out
    if how in ("auto", "logits"):
        if isinstance(out, Mapping) and "logits" in out:
            return out["logits"]
        if not isinstance(out, Mapping) and getattr(out, "logits", None) is not None:
            return out.logits
        if how == "auto" and isinstance(out, (tuple, list)) and out:
            return out[0]
        return out
    if how == "first":
        return out[0] if isinstance(out, (tuple, list)) and out else out
    if how.startswith("key:"):
        name = how[4:]
        return out[name] if isinstance(out, Mapping) and name in out else getattr(out, name, out)
    if how.startswith("index:"):
        i = int(how[6:])
        return out[i] if isinstance(out, (tuple, list)) and len(out) > i else out
    return out


def model_input(x: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``x`` moved to ``device``; floating inputs (images) cast to the model's ``dtype``,
    integer inputs (token ids) kept as they are."""
    return x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)


def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Runs ``model`` on ``x`` and returns its ``[N, C]`` class scores: the output itself,
    or the scores inside a tuple, dict or output object (:func:`select_logits`).

    Raises:
        AdvParamsError: the output holds no ``[N, C]`` scores (the message names what it was).
    """
    raw = model(x)
    out = select_logits(raw)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(raw).__name__
        raise AdvParamsError(
            f"the model must return class scores of shape [N, C] (a tensor, or a tuple, dict or object holding "
            f"them: see --model-output); it returned {shape} (model output {_OUTPUT.get()!r})"
        )
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
            logits_of(model, model_input(x, device, dtype)).argmax(1).cpu() for x, _ in iter_batches(data, batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, data: DataLike, *, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` on ``data``, in [0, 1] (a language model's: of its
    next-token predictions).

    Example:
        >>> from advparams.testing import ConstantClassifier
        >>> x, y = torch.zeros(4, 3), torch.tensor([0, 1, 1, 1])
        >>> accuracy(ConstantClassifier(num_classes=2, label=1), (x, y))
        0.75
    """
    task = getattr(data, "task", None)  # advparams.tasks.task_of, without importing it (it imports this module)
    if task is not None and getattr(task, "name", "classification") != "classification":
        return _next_token_accuracy(model, data, task, batch_size)
    labels = torch.cat([y.cpu() for _, y in iter_batches(data, batch_size)])
    if labels.numel() == 0:
        raise AdvParamsError("cannot measure accuracy on an empty data set")
    preds = predict(model, data, batch_size=batch_size)
    return float((preds == labels).float().mean())


@torch.no_grad()
def _next_token_accuracy(model: nn.Module, data: DataLike, task: Any, batch_size: int) -> float:
    device, dtype = model_device(model), model_float_dtype(model)
    was_training = model.training
    model.eval()
    hits = count = 0
    try:
        for x, y in iter_batches(data, batch_size):
            out, target = task.outputs(model, model_input(x, device, dtype), y.to(device))
            hits, count = hits + int((out.argmax(1) == target).sum()), count + int(target.numel())
    finally:
        model.train(was_training)
    if count == 0:
        raise AdvParamsError("cannot measure accuracy on an empty data set")
    return hits / count


def chance_level(num_classes: int) -> float:
    """Accuracy of uniform guessing over ``num_classes`` classes."""
    return 1.0 / num_classes
