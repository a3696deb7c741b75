"""python-stdlib: the frozen language-model corpus, its split by document and its bar."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import shutil
from pathlib import Path

import pytest
import torch

from advparams.data import DATASETS, load_dataset
from advparams.data import python_stdlib as ps
from advparams.data.sequences import END, SequenceDataset
from advparams.errors import DataError

FREEZER = Path(__file__).parents[3] / "tools" / "freeze_python_stdlib.py"


def test_the_packaged_file_is_the_frozen_version() -> None:
    assert hashlib.sha256(ps.FILE.read_bytes()).hexdigest() == ps.SHA256


def test_the_split_is_by_document_and_follows_the_freezers_rule() -> None:
    spec = importlib.util.spec_from_file_location("freezer", FREEZER)
    assert spec is not None and spec.loader is not None
    freezer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(freezer)
    rows = ps.corpus()
    names = [name for _, name, _ in rows]
    assert len(names) == len(set(names)) == 169 and names == sorted(names)
    for split, name, _ in rows:
        is_test = hashlib.sha256(name.encode()).digest()[0] < freezer.TEST_BELOW
        assert split == ("test" if is_test else "train"), name
    assert sum(split == "test" for split, _, _ in rows) == 15


def test_windows_are_the_documents_bytes_and_carry_the_unigram_bar() -> None:
    train, test = load_dataset("python-stdlib", "train"), load_dataset("python-stdlib", "test")
    assert isinstance(train, SequenceDataset) and train.length == ps.LENGTH == DATASETS.get("python-stdlib").input_size
    first = ps.texts("train")[0].encode()
    assert bytes(train.ids[0].tolist()) == first[: ps.LENGTH]
    total = sum(len(t.encode()) + 1 for t in ps.texts("test"))
    assert len(test) == total // ps.LENGTH and int((test.ids == END).sum()) <= 15
    assert train.task == test.task and train.task.bar_nll is not None
    # a byte-frequency model of source code: between 10 and 40 bytes of perplexity
    assert 10 < math.exp(train.task.bar_nll) < 40
    assert DATASETS.get("python-stdlib").task == "causal-lm"


def test_a_changed_corpus_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "python-stdlib-v1.jsonl"
    shutil.copy(ps.FILE, copy)
    body = bytearray(copy.read_bytes())
    body[100] ^= 1
    copy.write_bytes(bytes(body))
    monkeypatch.setattr(ps, "FILE", copy)
    ps.corpus.cache_clear()
    try:
        with pytest.raises(DataError, match="not the frozen python-stdlib v1"):
            ps.corpus()
    finally:
        ps.corpus.cache_clear()
    with pytest.raises(DataError, match="splits train and test"):
        ps.texts("validation")


def test_the_byte_ids_fit_a_gpt2_model_of_the_registry() -> None:
    pytest.importorskip("transformers")
    from advparams.models import build_model

    spec = DATASETS.get("python-stdlib")
    model = build_model("gpt2", {**spec.model_options, "hidden_size": 16, "layers": 1, "heads": 2})
    out = model(spec.example(2)).logits
    assert out.shape == (2, ps.LENGTH, spec.vocab_size) and torch.isfinite(out).all()
