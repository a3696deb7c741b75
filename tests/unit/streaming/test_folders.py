"""Keys applied to sharded Hugging Face folders tensor by tensor (``advparams.streaming``)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch

from advparams.checkpoint import load_checkpoint
from advparams.errors import AdvParamsError, CheckpointError, KeyMismatchError
from advparams.fingerprint import TENSORS_PREFIX, saved_tensors, tensors_fingerprint
from advparams.keys import key_to_bytes, load_key, unlock
from advparams.keys.key import Key, KeyEntry, Shuffle
from advparams.streaming import folder_fingerprint, lock_folder, read_shard, streams, unlock_folder

transformers = pytest.importorskip("transformers", reason="transformers is installed by make (the test extra)")


def _llama(folder: Path, seed: int = 0) -> torch.nn.Module:
    cfg = transformers.LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=64)  # fmt: skip
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(cfg).eval()
    model.save_pretrained(folder, max_shard_size="40KB")
    return model


def _hardened_key(model: torch.nn.Module, secret: bytes = bytes(range(32))) -> Key:
    shuffles = tuple(Shuffle(n, p.numel(), p.numel(), 23 if p.dim() >= 2 else 0)
                     for n, p in model.named_parameters() if p.numel() >= 2)  # fmt: skip
    return Key(entries=(), original_fingerprint="", locked_fingerprint="", scheme="hardened", shuffles=shuffles,
               secret=secret)  # fmt: skip


def _shards(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.safetensors"))}


@pytest.fixture()
def llama(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    model = _llama(tmp_path / "src")
    assert len(_shards(tmp_path / "src")) >= 4  # several shards, named by the index
    return tmp_path / "src", model


def test_a_streamed_lock_and_unlock_give_back_every_shard_byte_for_byte(llama, tmp_path: Path) -> None:
    src, model = llama
    made = lock_folder(src, _hardened_key(model), tmp_path / "L", tmp_path / "k.key", key_bytes=key_to_bytes)
    key = load_key(tmp_path / "k.key")
    assert streams(key) and key.original_fingerprint == made.original_fingerprint == folder_fingerprint(src)
    # the fingerprint streamed from the files is the one of the model's tensors in memory
    assert key.original_fingerprint == tensors_fingerprint(saved_tensors(model))
    locked = _shards(tmp_path / "L")
    assert set(locked) == set(_shards(src)) and all(locked[n] != b for n, b in _shards(src).items())
    # the same layout: every shard's header is the source's, byte for byte
    for name, data in _shards(src).items():
        (n,) = struct.unpack("<Q", data[:8])
        assert locked[name][: 8 + n] == data[: 8 + n] and len(locked[name]) == len(data)
    done = unlock_folder(tmp_path / "L", key, tmp_path / "U")
    assert _shards(tmp_path / "U") == _shards(src)
    assert done.tensors == len(saved_tensors(model)) and done.input_fingerprint == key.locked_fingerprint
    # the locked folder loads through from_pretrained, and unlocks in memory with the same key
    ckpt = load_checkpoint(tmp_path / "L")
    assert ckpt.meta["locked"]
    restored = unlock(ckpt.model, key)
    pairs = zip(restored.state_dict().values(), model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert not load_checkpoint(tmp_path / "U").meta["locked"]


def test_a_wrong_key_or_a_damaged_shard_writes_nothing(llama, tmp_path: Path) -> None:
    src, model = llama
    lock_folder(src, _hardened_key(model), tmp_path / "L", tmp_path / "k.key", key_bytes=key_to_bytes)
    other = _llama(tmp_path / "other", seed=1)
    lock_folder(tmp_path / "other", _hardened_key(other), tmp_path / "L2", tmp_path / "k2.key", key_bytes=key_to_bytes)
    with pytest.raises(KeyMismatchError, match="does not belong to this model"):
        unlock_folder(tmp_path / "L", load_key(tmp_path / "k2.key"), tmp_path / "U")
    with pytest.raises(KeyMismatchError, match="not locked"):
        unlock_folder(src, load_key(tmp_path / "k.key"), tmp_path / "U")
    # a key whose entry names a tensor no shard holds
    stray = Key(entries=(KeyEntry("nope", torch.tensor([0]), torch.zeros(1), torch.ones(1)),),
                original_fingerprint=TENSORS_PREFIX + "0" * 64, locked_fingerprint=TENSORS_PREFIX + "1" * 64,
                scheme="advparams")  # fmt: skip
    with pytest.raises(KeyMismatchError, match="do not hold"):
        unlock_folder(tmp_path / "L", stray, tmp_path / "U")
    # a shard whose header says a tensor runs past the file's end
    first = sorted((tmp_path / "L").glob("*.safetensors"))[0]
    data = bytearray(first.read_bytes())
    first.write_bytes(bytes(data[: len(data) - 4]))
    with pytest.raises(CheckpointError, match="past the file's end|truncated"):
        unlock_folder(tmp_path / "L", load_key(tmp_path / "k.key"), tmp_path / "U")
    assert not (tmp_path / "U").exists() and not list(tmp_path.glob(".U*"))


def test_a_hostile_shard_header_is_refused_before_any_tensor_is_read(tmp_path: Path) -> None:
    bad = tmp_path / "model.safetensors"
    header = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                         "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}).encode()  # fmt: skip
    bad.write_bytes(struct.pack("<Q", len(header)) + header + bytes(24))
    with pytest.raises(CheckpointError, match="overlaps"):
        read_shard(bad)
    bad.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(CheckpointError, match="truncated or not a safetensors"):
        read_shard(bad)
    os.mkfifo(tmp_path / "fifo.safetensors")
    with pytest.raises(AdvParamsError, match="not a regular file"):
        read_shard(tmp_path / "fifo.safetensors")


def test_lock_of_a_hugging_face_folder_writes_a_key_that_streams(tmp_path: Path) -> None:
    """``lock`` on a Hugging Face folder streams the files through the key the scheme made,
    with a tied output layer (GPT-2); ``unlock`` then restores it without loading it."""
    from advparams.usecases import lock_checkpoint, unlock_checkpoint

    cfg = transformers.GPT2Config(vocab_size=256, n_positions=128, n_embd=32, n_layer=1, n_head=2)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "src", max_shard_size="30KB")
    options = {"num_samples": 64, "check_samples": 0, "draws": 1, "dither": 23}
    lock_checkpoint(tmp_path / "src", tmp_path / "L", tmp_path / "k.key", scheme="hardened", options=options,
                    dataset="python-stdlib", evaluate=False, allow_partial=True)  # fmt: skip
    key = load_key(tmp_path / "k.key")
    assert streams(key) and key.locked_fingerprint == folder_fingerprint(tmp_path / "L")
    done = unlock_checkpoint(tmp_path / "L", key, tmp_path / "U")
    assert done.model is None and _shards(tmp_path / "U") == _shards(tmp_path / "src")
    again = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path / "U"), local_files_only=True)
    assert again.lm_head.weight.data_ptr() == again.transformer.wte.weight.data_ptr()
