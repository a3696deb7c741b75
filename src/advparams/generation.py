"""Text from a language model: what a locked and an unlocked model write after a prompt
(the samples of ``docs/language-models.md``), for any ``nn.Module`` that maps token ids
``[N, L]`` to next-token scores ``[N, L, V]`` (a tensor, or an output with ``logits``).

Example:
    >>> from torch import nn
    >>> class Echo(nn.Module):  # always predicts byte 'a'
    ...     def forward(self, x):
    ...         return torch.nn.functional.one_hot(torch.full_like(x, 97), 256).float()
    >>> continue_bytes(Echo(), "x = ", tokens=3)
    'aaa'
"""

from __future__ import annotations

import torch
from torch import nn

from advparams.devices import model_device
from advparams.errors import AdvParamsError
from advparams.metrics.accuracy import select_logits

__all__ = ["continue_bytes", "continue_ids", "printable"]


@torch.no_grad()
def continue_ids(
    model: nn.Module,
    prompt: torch.Tensor,
    *,
    tokens: int,
    window: int | None = None,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``tokens`` ids that ``model`` writes after ``prompt`` (1-d ids), each read from the
    last ``window`` ids at most: the most likely id (``temperature == 0``) or one drawn
    from the scores divided by ``temperature`` with ``generator``. The model's train/eval
    mode is restored afterwards."""
    if prompt.dim() != 1 or prompt.numel() == 0:
        raise AdvParamsError("the prompt must be a non-empty 1-d tensor of token ids")
    if temperature < 0:
        raise AdvParamsError(f"temperature must be at least 0, got {temperature}")
    was_training = model.training
    model.eval()
    ids = prompt.long().to(model_device(model))
    try:
        for _ in range(tokens):
            context = ids if window is None else ids[-window:]
            scores = select_logits(model(context[None]))
            if not isinstance(scores, torch.Tensor) or scores.dim() != 3:
                raise AdvParamsError("a language model must return next-token scores [N, L, V]")
            last = scores[0, -1].float()
            if temperature == 0:
                nxt = last.argmax()
            else:
                probs = torch.softmax(last / temperature, 0).cpu()
                nxt = torch.multinomial(probs, 1, generator=generator)[0].to(ids.device)
            ids = torch.cat([ids, nxt.view(1)])
    finally:
        model.train(was_training)
    return ids[prompt.numel() :].cpu()


def continue_bytes(model: nn.Module, prompt: str, *, tokens: int, window: int | None = None, **kw: object) -> str:
    """What a byte-level model writes after ``prompt``, decoded as UTF-8 (bad bytes replaced)."""
    prompt_ids = torch.tensor(list(prompt.encode("utf-8")), dtype=torch.long)
    out = continue_ids(model, prompt_ids, tokens=tokens, window=window, **kw)  # type: ignore[arg-type]
    return bytes(out.clamp(0, 255).tolist()).decode("utf-8", errors="replace")


def printable(text: str) -> str:
    """``text`` with control characters other than newline and tab shown as ``\\xNN``."""
    return "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in text)
