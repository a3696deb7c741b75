"""Language-model data: token windows whose task is next-token prediction.

A :class:`SequenceDataset` is a :class:`~advparams.data.base.TokenDataset` of windows of
``L`` token ids cut from a corpus, all labelled 0 (the draw of lock samples, which is
class-balanced, is then a plain random draw), whose ``task`` is
:class:`~advparams.tasks.CausalLM` with the corpus' unigram bar: every part of the
toolkit that reads the task (locks, training, attacks, metrics) treats it as a language
model. :func:`byte_windows` makes one from texts with byte-level tokens (the ids are the
UTF-8 bytes; 0, which source text never holds, ends a document).

Example:
    >>> train = byte_windows(["def f(x):\\n    return x\\n"] * 8, length=16, name="tiny")
    >>> train.ids.shape, train.vocab_size, train.task.name
    (torch.Size([12, 16]), 256, 'causal-lm')
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from advparams.data.base import TokenDataset
from advparams.errors import DataError
from advparams.tasks import CausalLM

__all__ = ["BYTE_VOCAB", "END", "SequenceDataset", "byte_stream", "byte_windows", "unigram_logprobs", "unigram_nll"]

BYTE_VOCAB = 256
END = 0
"""The id that ends a document in a byte stream (NUL)."""


class SequenceDataset(TokenDataset):
    """Windows of token ids ``[N, L]`` for next-token prediction (see the module's text).

    Args:
        ids: integer tensor ``[N, L]``, ``L >= 2``.
        vocab_size: ids lie in ``[0, vocab_size)``.
        bar_nll: the unigram model's cross-entropy on held-out text (nats per token;
            :func:`unigram_nll`), the level at which a locked model is useless; None:
            not known.
        name: data set name, for messages and records.
    """

    def __init__(self, ids: torch.Tensor, *, vocab_size: int, bar_nll: float | None, name: str = "dataset") -> None:
        if ids.dim() != 2 or ids.shape[1] < 2:
            raise DataError(f"{name}: windows must be token ids [N, L] with L >= 2, got {tuple(ids.shape)}")
        if bar_nll is not None and not (math.isfinite(bar_nll) and bar_nll > 0):
            raise DataError(f"{name}: the unigram bar must be a positive number of nats, got {bar_nll}")
        labels = torch.zeros(int(ids.shape[0]), dtype=torch.long)
        super().__init__(ids, labels, num_classes=vocab_size, vocab_size=vocab_size, pad_id=END, name=name)
        self.task = CausalLM(bar_nll)

    @property
    def length(self) -> int:
        """Tokens per window."""
        return int(self.ids.shape[1])

    def subset(self, indices: torch.Tensor) -> SequenceDataset:
        """A new data set holding the windows at ``indices`` (the same bar)."""
        return SequenceDataset(self.ids[indices], vocab_size=self.vocab_size, bar_nll=self.task.bar_nll, name=self.name)


def byte_stream(texts: Sequence[str]) -> torch.Tensor:
    """The UTF-8 bytes of ``texts``, each followed by :data:`END`, as one int64 tensor."""
    body = b"".join(t.encode("utf-8") + bytes([END]) for t in texts)
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).long()


def windows(stream: torch.Tensor, length: int) -> torch.Tensor:
    """``stream`` cut into non-overlapping windows of ``length`` (the tail dropped)."""
    count = int(stream.numel()) // length
    if count < 1:
        raise DataError(f"a corpus of {stream.numel()} tokens holds no window of {length}")
    return stream[: count * length].view(count, length)


def unigram_logprobs(stream: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Log-probabilities of a unigram model of ``stream`` (token counts plus one)."""
    counts = torch.bincount(stream.reshape(-1), minlength=vocab_size).double() + 1.0
    return (counts / counts.sum()).log()


def unigram_nll(logprobs: torch.Tensor, ids: torch.Tensor) -> float:
    """The unigram model's cross-entropy (nats per token) on the targets of windows
    ``ids`` (every token but each window's first, as a language model is measured)."""
    return float(-logprobs[ids[:, 1:].reshape(-1)].mean())


def byte_windows(
    texts: Sequence[str],
    *,
    length: int,
    name: str = "dataset",
    held_out: Sequence[str] | None = None,
) -> SequenceDataset:
    """Byte-level windows of ``texts`` whose unigram bar is measured on ``held_out`` (by
    default on ``texts`` themselves), the unigram model fitted on ``texts``."""
    stream = byte_stream(texts)
    ids = windows(stream, length)
    logprobs = unigram_logprobs(stream, BYTE_VOCAB)
    other = ids if held_out is None else windows(byte_stream(held_out), length)
    return SequenceDataset(ids, vocab_size=BYTE_VOCAB, bar_nll=unigram_nll(logprobs, other), name=name)
