"""debian-descriptions: the frozen corpus, its split and its token ids."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from advparams.data import DATASETS, TokenDataset, iter_batches, load_dataset
from advparams.data import debian_descriptions as dd
from advparams.errors import DataError

FREEZER = Path(__file__).parents[3] / "tools" / "freeze_debian_descriptions.py"


def test_the_packaged_file_is_the_frozen_version() -> None:
    assert hashlib.sha256(dd.FILE.read_bytes()).hexdigest() == dd.SHA256


def test_every_class_has_as_many_lines_per_split_and_no_text_is_in_both() -> None:
    rows = dd.corpus()
    per = Counter((split, label) for split, label, _ in rows)
    assert {per[("train", c)] for c in dd.CLASSES} == {485}
    assert {per[("test", c)] for c in dd.CLASSES} == {126}
    train = {t for s, _, t in rows if s == "train"}
    test = {t for s, _, t in rows if s == "test"}
    assert not train & test
    assert len(train) + len(test) == len(rows)  # no duplicates either


def test_near_copies_never_straddle_the_split() -> None:
    spec = importlib.util.spec_from_file_location("freezer", FREEZER)
    assert spec is not None and spec.loader is not None
    freezer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(freezer)
    groups: dict[str, set[str]] = {}
    for split, _, text in dd.corpus():
        groups.setdefault(freezer.group_of(text), set()).add(split)
    assert all(len(s) == 1 for s in groups.values())
    assert freezer.group_of("Foo game (data files)") == freezer.group_of("foo game - music")


def test_token_ids_start_with_cls_pad_with_zero_and_use_the_training_vocabulary() -> None:
    vocab = dd.vocabulary()
    assert len(vocab) == dd.VOCAB_SIZE and vocab[:3] == dd.SPECIAL
    ids = dd.encode(["A strategy game", "zzzunseenword " * 40])
    assert ids.shape == (2, dd.LENGTH)
    assert ids[0, 0] == 2 and ids[0, 1:4].tolist() == [vocab.index(w) for w in ("a", "strategy", "game")]
    assert (ids[0, 4:] == 0).all()
    assert ids[1, 1] == 1 and (ids[1] != 0).all()  # unknown words, cut at LENGTH


def test_the_registered_data_set_gives_token_datasets_that_batch_like_images() -> None:
    train = load_dataset("debian-descriptions", "train")
    assert isinstance(train, TokenDataset) and len(train) == 485 * 8
    spec = DATASETS.get("debian-descriptions")
    assert spec.model_options["vocab_size"] == dd.VOCAB_SIZE
    assert spec.example(3).dtype == torch.long and spec.example(3).shape == (3, dd.LENGTH)
    x, y = next(iter_batches(train, 5))
    assert x.dtype == torch.long and torch.equal(x, train.ids[:5]) and torch.equal(y, train.labels[:5])
    sub = train.subset(torch.tensor([3, 1]))
    assert torch.equal(sub.ids, train.ids[[3, 1]]) and sub.vocab_size == dd.VOCAB_SIZE


def test_a_changed_corpus_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "corpus.jsonl"
    shutil.copy(dd.FILE, copy)
    copy.write_bytes(copy.read_bytes().replace(b"game", b"gamf", 1))
    monkeypatch.setattr(dd, "FILE", copy)
    dd.corpus.cache_clear()
    try:
        with pytest.raises(DataError, match="not the frozen debian-descriptions v1"):
            dd.corpus()
    finally:
        dd.corpus.cache_clear()


def test_token_datasets_refuse_bad_ids() -> None:
    with pytest.raises(DataError, match=r"token ids must lie in \[0, 10\)"):
        TokenDataset(torch.tensor([[1, 10]]), torch.tensor([0]), num_classes=2, vocab_size=10)
    with pytest.raises(DataError, match="integer tensor"):
        TokenDataset(torch.zeros(2, 3), torch.tensor([0, 1]), num_classes=2, vocab_size=10)
    with pytest.raises(DataError, match="2 texts but 1 labels"):
        TokenDataset(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0]), num_classes=2, vocab_size=10)


def test_the_freezer_drops_shared_texts_balances_classes_and_is_deterministic(tmp_path: Path) -> None:
    stanzas = []
    for i, c in enumerate(dd.CLASSES * 12):
        stanzas.append(f"Package: p{i}\nSection: {c}\nDescription: {c} tool number {i}\n long text ignored")
    stanzas.append("Package: shared1\nSection: games\nDescription: same words twice")
    stanzas.append("Package: shared2\nSection: contrib/sound\nDescription: same words twice")
    stanzas.append("Package: extra\nSection: games\nDescription: one more game")
    packages = tmp_path / "Packages"
    packages.write_text("\n\n".join(stanzas) + "\n", encoding="utf-8")
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        subprocess.run([sys.executable, str(FREEZER), str(packages), "--out", str(tmp_path / name)], check=True,
                       capture_output=True)  # fmt: skip
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    rows = [json.loads(line) for line in outs[0].decode().splitlines()]
    assert all(r["text"] != "same words twice" for r in rows)
    per = Counter((r["split"], r["label"]) for r in rows)
    assert len({per[("train", c)] for c in dd.CLASSES}) == 1 and len({per[("test", c)] for c in dd.CLASSES}) == 1
    assert per[("train", "games")] > 0 and "long text ignored" not in outs[0].decode()


def test_a_text_model_is_trained_locked_and_unlocked_from_the_command_line(capsys, tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="transformers is installed by make (the test extra)")
    from advparams.cli import main

    def run(*argv: object) -> int:
        return main([str(a) for a in argv])

    options = ["--set", "layers=1", "--set", "hidden_size=32", "--set", "heads=2", "--train-samples", "1500"]
    train = ["train", "--model", "bert", "--dataset", "debian-descriptions", "--epochs", "4", "--lr", "0.003"]
    assert run(*train, *options, "--out", tmp_path / "bert") == 0
    assert run("lock", tmp_path / "bert", "--out", tmp_path / "locked", "--key", tmp_path / "k.key") == 0
    assert run("unlock", tmp_path / "locked", "--key", tmp_path / "k.key", "--out", tmp_path / "back") == 0
    capsys.readouterr()
    assert run("lock", tmp_path / "bert", "--dataset", "fashion-mnist", "--out", tmp_path / "x", "--key",
               tmp_path / "x.key") != 0  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit data set fashion-mnist" in err[0]
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.key").exists()
