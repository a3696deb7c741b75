"""Locks on a language model: each lands at or above the unigram bar on held-out text,
its key holds each change once (tied weights included) and unlocks bit-exactly, also
through a Hugging Face folder and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from advparams import SCHEMES, unlock
from advparams.cli import main
from advparams.data.sequences import SequenceDataset
from advparams.tasks import task_quality
from advparams.testing import state_equal

SMALL = {"num_samples": 120, "check_samples": 200, "batch_size": 120}
LOCKS = [
    ("advparams", {}),
    ("advparams", {"search": "greedy", "max_params": 40}),
    ("hardened", {"reproducible": True}),
]


@pytest.mark.parametrize(("scheme", "options"), LOCKS, ids=["batched", "greedy", "hardened"])
def test_a_lock_lands_above_the_unigram_bar_and_unlocks_bit_exactly(
    language_model: torch.nn.Module, corpus: tuple[SequenceDataset, SequenceDataset], scheme: str, options: dict
) -> None:
    train, test = corpus
    bar = math.exp(train.task.bar_nll)
    before = {k: v.clone() for k, v in language_model.state_dict().items()}
    clean = task_quality(language_model, test)["perplexity"]
    assert clean < bar / 4  # the model has learnt more than token frequencies
    result = SCHEMES.build(scheme, {**SMALL, **options, "seed": 1}).lock(language_model, train)
    rep = result.report
    assert rep.target_met and rep.certified, rep
    assert rep.target_accuracy == pytest.approx(1 / (train.task.headroom * bar))  # the level: 1 / perplexity
    assert 1 / rep.check_accuracy >= train.task.headroom * bar
    assert task_quality(result.model, test)["perplexity"] >= bar  # unseen documents
    assert all(torch.equal(language_model.state_dict()[k], v) for k, v in before.items())  # input untouched
    assert result.key.num_changed == rep.params_changed
    if scheme == "advparams":
        names = {e.name for e in result.key.entries}
        assert "lm_head.weight" not in names  # tied to the token embedding: written once, through it
        assert 0 < rep.params_changed <= options.get("max_params", 100)
    restored = unlock(result.model, result.key)
    assert state_equal(restored, language_model)
    assert task_quality(restored, test)["perplexity"] == clean


def test_lock_and_unlock_a_hugging_face_language_model_folder_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transformers = pytest.importorskip("transformers")
    from advparams.data import load_dataset
    from advparams.training import TrainConfig, train_from_seed

    train = load_dataset("python-stdlib", "train")
    options = {"vocab_size": 256, "input_size": 128, "hidden_size": 32, "layers": 1, "heads": 2}
    config = TrainConfig(epochs=2, batch_size=16, lr=3e-3)
    model = train_from_seed("gpt2", options, train.subset(torch.arange(600)), config, seed=0)
    model.model.save_pretrained(tmp_path / "src")
    base = [str(tmp_path / "src"), "--dataset", "python-stdlib", "--set", "num_samples=150"]
    base += ["--set", "check_samples=200"]
    out, key, back = tmp_path / "locked", tmp_path / "key.safetensors", tmp_path / "back"
    assert main(["lock", *base, "--out", str(out), "--key", str(key), "--json"]) == 0
    locked = json.loads(capsys.readouterr().out)
    assert locked["target_met"]
    assert locked["perplexity_locked"] >= locked["perplexity_bar"] > locked["perplexity_before"]
    assert main(["unlock", str(out), "--key", str(key), "--out", str(back), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["exact"]
    cls = transformers.GPT2LMHeadModel
    original = cls.from_pretrained(str(tmp_path / "src"), local_files_only=True)
    again = cls.from_pretrained(str(back), local_files_only=True)
    shut = cls.from_pretrained(str(out), local_files_only=True)
    assert state_equal(again, original) and not state_equal(shut, original)
    assert again.lm_head.weight.data_ptr() == again.transformer.wte.weight.data_ptr()
    # without --json the lines speak of perplexity, the lock's own numbers included
    assert main(["lock", *base, "--out", str(tmp_path / "l2"), "--key", str(tmp_path / "k2")]) == 0
    text = capsys.readouterr().out
    assert "test next-token accuracy" in text and "(a unigram model of the corpus:" in text
    assert "the search did not see (target perplexity" in text and "% lower bound perplexity" in text
    # a target the model already meets (level 0.9: perplexity 1.11) is refused in perplexity
    code = main(["lock", *base, "--set", "target_accuracy=0.9", "--out", str(tmp_path / "l3"),
                 "--key", str(tmp_path / "k3")])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and "the model's perplexity on the lock samples is already perplexity" in err
    assert "at or above the target perplexity 1.11" in err and not (tmp_path / "l3").exists()
