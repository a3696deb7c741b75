"""Hugging Face folders from the command line: a BERT text classifier (sharded and in one
file, with its tokenizer) and a ViT image classifier (with its image processor), written
by ``save_pretrained`` and trained here in seconds, locked and unlocked through `advparams
lock` / `unlock`; both outputs load with ``from_pretrained``, the unlocked one's tensors
equal the original's bit for bit, every other file is copied byte for byte, and bad input
gets one error line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is installed by make (the test extra)")

from advparams.checkpoint import load_checkpoint  # noqa: E402
from advparams.huggingface.folder import STATE, weight_files  # noqa: E402
from advparams.metrics import accuracy  # noqa: E402
from advparams.testing.huggingface import tiny_bert_folder, tiny_vit_folder, word_task, write_texts  # noqa: E402
from advparams.usecases.data import checkpoint_data  # noqa: E402
from tests.unit.cli_helpers import one_line_error, run  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    texts, labels = word_task(6000, seed=7)
    return {
        "bert-shards": tiny_bert_folder(root / "bert-shards", shard_size="40KB"),
        "bert": tiny_bert_folder(root / "bert", seed=1),
        "vit": tiny_vit_folder(root / "vit"),
        "texts": write_texts(root / "texts.jsonl", texts, labels),
    }


def _data_args(folders: dict[str, Path], name: str) -> list[object]:
    return ["--dataset", "synthetic"] if name == "vit" else ["--data", folders["texts"]]


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for shard in weight_files(folder):
        out.update(load_file(str(folder / shard)))
    return out


def _other_files(folder: Path) -> dict[str, bytes]:
    weights = set(weight_files(folder))
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name not in weights
            and not p.name.startswith(".") and p.name != STATE}  # fmt: skip


@pytest.mark.parametrize("name", ["bert-shards", "bert", "vit"])
def test_lock_and_unlock_a_hugging_face_folder(capsys, folders, tmp_path, name) -> None:
    source = folders[name]
    locked, key, restored = tmp_path / "locked", tmp_path / "key", tmp_path / "restored"
    code, out, err = run(capsys, "lock", source, "--out", locked, "--key", key, *_data_args(folders, name), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["target_met"] and summary["accuracy_before"] >= 0.95
    assert summary["accuracy_locked"] <= 0.30  # 4 classes (text) or 10 (images): near chance
    code, out, err = run(capsys, "unlock", locked, "--key", key, "--out", restored, "--json")
    assert code == 0, err

    cls = getattr(transformers, json.loads((source / "config.json").read_text())["architectures"][0])
    # the same layout as the source: shards, index and every other file (tokenizer, processor, config)
    assert weight_files(locked) == weight_files(restored) == weight_files(source)
    assert _other_files(locked) == _other_files(restored) == _other_files(source)
    # the unlocked folder's tensors are the original's, bit for bit; the locked one's differ
    original, back, changed = _tensors(source), _tensors(restored), _tensors(locked)
    assert original.keys() == back.keys() == changed.keys()
    assert all(torch.equal(original[k], back[k]) for k in original)
    assert sum(not torch.equal(original[k], changed[k]) for k in original) >= 1
    # both load with transformers' own from_pretrained; only the unlocked one works
    ckpt = load_checkpoint(source)
    _, test = checkpoint_data(ckpt, "test", dataset="synthetic" if name == "vit" else None,
                              data=None if name == "vit" else folders["texts"])  # fmt: skip
    for folder, works in ((locked, False), (restored, True)):
        model = cls.from_pretrained(str(folder), local_files_only=True).eval()
        acc = accuracy(load_checkpoint(folder).model, test)
        assert isinstance(model, cls) and (acc >= 0.95 if works else acc <= 0.30), (folder, acc)
    assert load_checkpoint(locked).meta["locked"] and not load_checkpoint(restored).meta["locked"]


def test_a_wrong_key_and_a_missing_shard_each_give_one_line(capsys, folders, tmp_path) -> None:
    for name, data in (("bert", ["--data", folders["texts"]]), ("vit", ["--dataset", "synthetic"])):
        code, _, err = run(capsys, "lock", folders[name], "--out", tmp_path / f"{name}-locked",
                           "--key", tmp_path / f"{name}.key", *data)  # fmt: skip
        assert code == 0, err
    code, _, err = run(
        capsys, "unlock", tmp_path / "vit-locked", "--key", tmp_path / "bert.key", "--out", tmp_path / "u"
    )
    one_line_error(code, err, "key")
    assert not (tmp_path / "u").exists()

    broken = tmp_path / "broken"
    shutil.copytree(folders["bert-shards"], broken)
    shard = weight_files(broken)[1]
    (broken / shard).unlink()
    code, _, err = run(
        capsys, "lock", broken, "--out", tmp_path / "l", "--key", tmp_path / "k", "--data", folders["texts"]
    )
    one_line_error(code, err, f"shard {shard}")
    code, _, err = run(capsys, "evaluate", broken, "--data", folders["texts"])
    one_line_error(code, err, "missing")
    assert not (tmp_path / "l").exists() and not (tmp_path / "k").exists()


def test_pickled_weights_are_never_read_nor_copied(capsys, folders, tmp_path) -> None:
    source = tmp_path / "with-bin"
    shutil.copytree(folders["bert"], source)
    (source / "pytorch_model.bin").write_bytes(b"a pickle, never opened")
    code, _, err = run(
        capsys, "lock", source, "--out", tmp_path / "l", "--key", tmp_path / "k", "--data", folders["texts"]
    )
    assert code == 0, err
    assert not (tmp_path / "l" / "pytorch_model.bin").exists()

    only_bin = tmp_path / "only-bin"
    only_bin.mkdir()
    shutil.copy(folders["bert"] / "config.json", only_bin / "config.json")
    (only_bin / "pytorch_model.bin").write_bytes(b"a pickle")
    code, _, err = run(capsys, "evaluate", only_bin, "--data", folders["texts"])
    one_line_error(code, err, "never pickles")


def test_remote_code_is_refused(capsys, folders, tmp_path) -> None:
    folder = tmp_path / "remote"
    shutil.copytree(folders["bert"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "x.Y"}}))
    code, _, err = run(capsys, "evaluate", folder, "--data", folders["texts"])
    one_line_error(code, err, "never run")


@pytest.mark.parametrize("dataset", ["python-stdlib", "synthetic", None])
def test_a_text_classifier_needs_its_own_data(capsys, folders, tmp_path, dataset) -> None:
    # a registered token data set holds byte ids that only a language model reads; a text
    # classifier reads its own tokenizer's ids, so only --data fits it
    extra = [] if dataset is None else ["--dataset", dataset]
    code, _, err = run(capsys, "lock", folders["bert"], "--out", tmp_path / "l", "--key", tmp_path / "k", *extra)
    one_line_error(code, err, "give your data with --data")
    assert not (tmp_path / "l").exists() and not (tmp_path / "k").exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"text": "w1 w2"}\n', "needs a text and a label"),
        ("not json\n", "line 1 is not JSON"),
        ('{"text": "w1 w2", "label": "up"}\n{"text": "w3", "label": "up"}\n', "not one of the model's 4 classes"),
    ],
)
def test_bad_text_data_gets_one_line(capsys, folders, tmp_path, content, match) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(content)
    code, _, err = run(capsys, "evaluate", folders["bert"], "--data", data)
    one_line_error(code, err, match)


def test_an_edited_locked_folder_is_detected(capsys, folders, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    code, _, err = run(capsys, "lock", folders["vit"], "--out", tmp_path / "l", "--key", tmp_path / "k",
                       "--dataset", "synthetic")  # fmt: skip
    assert code == 0, err
    weights = tmp_path / "l" / "model.safetensors"
    tensors = load_file(str(weights))
    tensors["classifier.bias"] = tensors["classifier.bias"] + 1
    save_file(tensors, str(weights), metadata={"format": "pt"})
    code, _, err = run(capsys, "unlock", tmp_path / "l", "--key", tmp_path / "k", "--out", tmp_path / "u")
    one_line_error(code, err, "corrupt or edited")


def test_the_customer_loads_a_locked_folder_unlocked_in_memory(capsys, folders, tmp_path) -> None:
    from advparams import open_unlocked
    from advparams.errors import KeyMismatchError

    for name, data in (("vit", ["--dataset", "synthetic"]), ("bert", ["--data", folders["texts"]])):
        code, _, err = run(capsys, "lock", folders[name], "--out", tmp_path / name, "--key", tmp_path / f"{name}.key",
                           *data)  # fmt: skip
        assert code == 0, err
    before = sorted(p.name for p in tmp_path.rglob("*"))
    model = open_unlocked(tmp_path / "vit", tmp_path / "vit.key")
    assert isinstance(model, transformers.ViTForImageClassification) and not model.training
    original = load_checkpoint(folders["vit"]).model.state_dict()
    assert all(torch.equal(v, original[k]) for k, v in model.state_dict().items())
    code, out, err = run(capsys, "evaluate", tmp_path / "vit", "--key", tmp_path / "vit.key", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["unlocked_in_memory"] and not summary["locked"] and summary["accuracy"] >= 0.95
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing unlocked was written
    with pytest.raises(KeyMismatchError):
        open_unlocked(tmp_path / "vit", tmp_path / "bert.key")
    code, _, err = run(capsys, "evaluate", tmp_path / "vit", "--key", tmp_path / "bert.key")
    one_line_error(code, err, "does not belong to this model")


def test_per_user_keys_and_white_box_tracing_on_a_folder(capsys, folders, tmp_path) -> None:
    d = tmp_path
    lock = ["lock", folders["vit"], "--scheme", "hardened", "--set", "dither=23", "--dataset", "synthetic"]
    assert run(capsys, *lock, "--out", d / "locked", "--key", d / "owner.key")[0] == 0
    users = [f"user{i:02d}" for i in range(8)]
    assert run(capsys, "keys", "users", "create", d / "users.json", *users, "--set", "positions=2048")[0] == 0
    issue = ["keys", "issue", d / "locked", "--key", d / "owner.key", "--users", d / "users.json"]
    code, _, err = run(capsys, *issue, "--user", "user05", "--out", d / "user05.key")
    assert code == 0, err
    code, _, err = run(capsys, "unlock", d / "locked", "--key", d / "user05.key", "--out", d / "copy05")
    assert code == 0, err
    # the user's copy is a Hugging Face folder that from_pretrained loads, and it works
    copy = transformers.ViTForImageClassification.from_pretrained(str(d / "copy05"), local_files_only=True)
    _, test = checkpoint_data(load_checkpoint(folders["vit"]), "test", dataset="synthetic")
    assert accuracy(copy.eval(), test) >= 0.9
    trace = ["trace", d / "copy05", "--key", d / "owner.key", "--locked", d / "locked", "--users", d / "users.json"]
    code, out, err = run(capsys, *trace, "--json")
    assert code == 0, err
    assert json.loads(out)["accused"] == ["user05"]
    code, out, _ = run(capsys, "trace", folders["vit"], *trace[2:], "--json")
    assert code == 3 and json.loads(out)["accused"] == []


def test_an_ownership_fingerprint_of_a_folder(capsys, folders, tmp_path) -> None:
    nulls = [tiny_vit_folder(tmp_path / f"null{seed}", seed=seed, epochs=2) for seed in (1, 2)]
    fp = tmp_path / "vit.ipguard"
    sets = ["--set", "points=16", "--set", "steps=30"]
    code, out, err = run(capsys, "fingerprint", "extract", folders["vit"], "--scheme", "ipguard", *sets, "--out", fp,
                         "--dataset", "synthetic", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["self_score"] == pytest.approx(1.0)
    code, out, err = run(
        capsys, "fingerprint", "verify", folders["vit"], "--fingerprint", fp, "--null", *nulls, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["verified"]
