"""The task layer: next-token scores, levels, bars and bounds of a language model, and
classification read as before."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advparams.data.sequences import END, SequenceDataset, byte_stream, byte_windows, unigram_logprobs, unigram_nll
from advparams.errors import AdvParamsError, DataError
from advparams.metrics import accuracy
from advparams.tasks import CLASSIFICATION, CausalLM, perplexity, task_of, task_quality


class Uniform(nn.Module):
    """A language model that gives every token of ``vocab`` the same score."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(*x.shape, self.vocab)


class Copier(nn.Module):
    """Predicts that the next token is the window's own next token (it cheats: a sure model)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.scale = nn.Parameter(torch.tensor(50.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nxt = torch.cat([x[:, 1:], x[:, :1]], 1)
        return self.scale * nn.functional.one_hot(nxt, self.vocab).float()


def test_next_token_scores_are_shifted_by_one() -> None:
    task = CausalLM(2.0)
    x = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    scores, targets = task.outputs(Copier(10), x, torch.zeros(2, dtype=torch.long))
    assert scores.shape == (6, 10) and targets.tolist() == [2, 3, 4, 6, 7, 8]
    assert (scores.argmax(1) == targets).all()


def test_a_uniform_model_sits_at_perplexity_v_and_level_one_over_v() -> None:
    data = SequenceDataset(torch.randint(0, 50, (20, 9)), vocab_size=50, bar_nll=3.0)
    q = task_quality(Uniform(50), data)
    assert q["perplexity"] == pytest.approx(50.0, rel=1e-5) and q["level"] == pytest.approx(1 / 50, rel=1e-5)
    assert perplexity(Uniform(50), data) == pytest.approx(50.0, rel=1e-5)
    assert task_quality(Copier(50), data)["perplexity"] == pytest.approx(1.0, abs=1e-6)
    assert accuracy(Copier(50), data) == 1.0  # next-token accuracy, not the labels


def test_the_unigram_bar_is_the_cross_entropy_of_token_frequencies() -> None:
    stream = torch.tensor([1, 1, 1, 2])
    logprobs = unigram_logprobs(stream, 4)  # counts plus one: 1, 4, 2, 1 of 8
    assert torch.allclose(logprobs.exp(), torch.tensor([1, 4, 2, 1]).double() / 8, atol=1e-12)
    ids = torch.tensor([[0, 1, 2]])  # targets 1 and 2
    assert unigram_nll(logprobs, ids) == pytest.approx(-(math.log(4 / 8) + math.log(2 / 8)) / 2)
    # the lock aims above the bar on its own samples (headroom), to land above it on unseen text
    target = CausalLM(unigram_nll(logprobs, ids)).default_target(None, 4)
    assert target == pytest.approx(1 / (1.1 * math.exp(unigram_nll(logprobs, ids))))
    assert CausalLM(unigram_nll(logprobs, ids), headroom=1.0).default_target(None, 4) == pytest.approx(
        1 / math.exp(unigram_nll(logprobs, ids))
    )
    with pytest.raises(AdvParamsError, match="headroom"):
        CausalLM(1.0, headroom=0.5)


def test_byte_windows_end_each_document_and_keep_the_bar_through_subsets() -> None:
    stream = byte_stream(["ab", "c"])
    assert stream.tolist() == [97, 98, END, 99, END]
    data = byte_windows(["abcdefgh"] * 4, length=6, held_out=["zzzzzzzzzzzz"])
    assert data.ids.shape == (6, 6) and task_of(data).name == "causal-lm"
    assert data.task.bar_nll is not None and data.task.bar_nll > math.log(30)  # 'z' never seen in training
    part = data.subset(torch.tensor([0, 2]))
    assert isinstance(part, SequenceDataset) and part.task == data.task and part.ids.shape == (2, 6)


@pytest.mark.parametrize(
    ("ids", "bar", "match"),
    [
        (torch.zeros(4, dtype=torch.long), 1.0, "windows must be token ids"),
        (torch.zeros(4, 1, dtype=torch.long), 1.0, "windows must be token ids"),
        (torch.zeros(4, 3, dtype=torch.long), float("nan"), "unigram bar"),
        (torch.zeros(4, 3, dtype=torch.long), -1.0, "unigram bar"),
        (torch.full((4, 3), 300), 1.0, "token ids must lie"),
    ],
)
def test_bad_windows_are_refused(ids: torch.Tensor, bar: float, match: str) -> None:
    with pytest.raises(DataError, match=match):
        SequenceDataset(ids, vocab_size=256, bar_nll=bar)


def test_a_language_model_task_refuses_what_is_not_one() -> None:
    task = CausalLM(1.0)
    with pytest.raises(AdvParamsError, match="token ids"):
        task.outputs(Uniform(5), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(AdvParamsError, match=r"next-token scores \[N, L, V\]"):
        task.outputs(nn.Flatten(), torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(AdvParamsError, match="no unigram bar"):
        CausalLM(None).default_target(None, 5)


def test_the_bound_certifies_only_what_the_sequences_show() -> None:
    task = CausalLM(1.0)
    # 400 sequences of 10 tokens at 2 nats per token on average, spread 0.5
    per_seq = -(2.0 + 0.5 * torch.randn(400, generator=torch.Generator().manual_seed(0)).double()) * 10
    level, bound = task.bound(per_seq, 4000, 0.95)
    assert level == pytest.approx(math.exp(float(per_seq.sum()) / 4000))
    assert bound > level  # an upper bound on 1 / perplexity
    assert math.log(bound) == pytest.approx(math.log(level) + 1.6449 * float((per_seq / 10).std()) / 20, rel=1e-3)
    _, wider = task.bound(per_seq[:40], 400, 0.95)
    assert wider > bound


def test_data_without_a_task_is_classification_and_reads_as_before() -> None:
    x, y = torch.zeros(4, 3), torch.tensor([0, 1, 1, 1])
    assert task_of((x, y)) is CLASSIFICATION
    assert CLASSIFICATION.default_target(None, 10) == pytest.approx(0.12)
    assert CLASSIFICATION.combine([(0.5, 10), (0.25, 4)], 14) == 6 / 14
    tallies = torch.tensor([1.0, 0.0, 1.0, 1.0]).double()
    level, bound = CLASSIFICATION.bound(tallies, 4, 0.95)
    assert level == 0.75 and bound > 0.75


def test_generation_continues_a_prompt_greedily_or_by_sampling_and_refuses_bad_prompts() -> None:
    from advparams.generation import continue_bytes, continue_ids, printable

    model = Copier(256)  # predicts each window's own next byte; the last position wraps to the first
    assert continue_bytes(model, "ab", tokens=3) == "aaa"
    drawn = continue_ids(Uniform(256), torch.tensor([1, 2]), tokens=50, temperature=1.0,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    again = continue_ids(Uniform(256), torch.tensor([1, 2]), tokens=50, temperature=1.0,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.equal(drawn, again) and len(set(drawn.tolist())) > 10  # seeded, and spread over the bytes
    assert continue_ids(model, torch.tensor([5, 6, 7]), tokens=2, window=1).tolist() == [7, 7]
    assert printable("a\x00b\n") == "a\\x00b\n"
    with pytest.raises(AdvParamsError, match="non-empty 1-d"):
        continue_ids(model, torch.tensor([]), tokens=1)
    with pytest.raises(AdvParamsError, match="temperature"):
        continue_ids(model, torch.tensor([1]), tokens=1, temperature=-1.0)
