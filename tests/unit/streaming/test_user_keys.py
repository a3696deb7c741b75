"""Per-user keys that scale: a few bytes per run of 4,096 values; the user's copy is the
original but for the mark band of the runs the code marks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from advparams.errors import KeyMismatchError
from advparams.keys import key_from_bytes, key_to_bytes, load_key, relock
from advparams.keys.blocked import BLOCK, source_rows
from advparams.keys.key import Key, Shuffle
from advparams.streaming import lock_folder, read_shard, unlock_folder
from advparams.tracing.rowkeys import RowMarkConfig, issue_row_user_key, row_plan

transformers = pytest.importorskip("transformers", reason="transformers is installed by make (the test extra)")
BAND = 12  # low mantissa bits the marks may change


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        shard = read_shard(f)
        out.update({n: shard.read(n) for n in shard.tensors})
    return out


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path, Key]:
    base = tmp_path_factory.mktemp("rows")
    cfg = transformers.LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=64)  # fmt: skip
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    model.save_pretrained(base / "src", max_shard_size="300KB")
    layout = {n: 2 if p.numel() >= 2 * BLOCK else 1 for n, p in model.named_parameters()}
    shuffles = tuple(Shuffle(n, p.numel(), p.numel(), BAND if layout[n] == 2 else 0, layout[n])
                     for n, p in model.named_parameters() if p.numel() >= 2)  # fmt: skip
    key = Key((), "", "", "hardened", shuffles=shuffles, secret=os.urandom(32))
    owner = lock_folder(base / "src", key, base / "L", base / "owner.key", key_bytes=key_to_bytes)
    return base, base / "L", owner


def test_a_user_copy_is_the_original_but_the_mark_band_of_the_marked_runs(pair) -> None:
    base, locked, owner = pair
    config = RowMarkConfig(positions=48)
    alice = issue_row_user_key(locked, owner, "alice", config)
    bob = issue_row_user_key(locked, owner, "bob", config)
    again = key_from_bytes(key_to_bytes(alice))  # key file version 5
    assert again.row_keys.keys() == alice.row_keys.keys() and not again.secret
    assert all(torch.equal(again.row_keys[n], alice.row_keys[n]) for n in alice.row_keys)
    unlock_folder(locked, again, base / "A")
    unlock_folder(locked, bob, base / "B")
    original, a, b = _tensors(base / "src"), _tensors(base / "A"), _tensors(base / "B")
    plan = row_plan(owner, config)
    marked: dict[str, set[int]] = {}
    for name, row in zip(plan.names, plan.rows.tolist(), strict=True):
        src = source_rows(owner_key_perm(owner), name, original[name].numel())
        marked.setdefault(name, set()).add(int(src[row]))
    changed_rows = 0
    for name, want in original.items():
        diff = (a[name].view(torch.int32) ^ want.view(torch.int32)) if want.dtype == torch.float32 else None
        if diff is None or want.numel() < 2 * BLOCK:
            assert torch.equal(a[name], want), name  # small tensors: exactly the original
            continue
        rows = diff[: (want.numel() // BLOCK) * BLOCK].view(-1, BLOCK)
        touched = {int(i) for i in torch.nonzero(rows.ne(0).any(dim=1)).view(-1)}
        assert touched <= marked.get(name, set()), name  # only marked runs differ ...
        assert int((diff >> BAND).abs().sum()) == 0, name  # ... and only in the mark band
        changed_rows += len(touched)
    assert changed_rows >= 0.9 * len(plan.names)  # (a run whose band noise happens to match is rare)
    # two users' copies differ only where their code bits differ
    bits_a, bits_b = plan.code.codeword("alice"), plan.code.codeword("bob")
    for name, want in original.items():
        if want.numel() >= 2 * BLOCK:
            differ = {int(i) for i in torch.nonzero(a[name].view(-1, BLOCK).ne(b[name].view(-1, BLOCK)).any(1))}
            src = source_rows(owner_key_perm(owner), name, want.numel())
            pairs = enumerate(zip(plan.names, plan.rows.tolist(), strict=True))
            allowed = {int(src[r]) for j, (n, r) in pairs if n == name and bits_a[j] != bits_b[j]}
            assert differ <= allowed, name
    # the row keys are 12 bytes per run of 4,096 values; the whole key a small share of the model
    model_bytes = sum(t.numel() * t.element_size() for t in original.values())
    assert (base / "owner.key").exists()
    assert len(key_to_bytes(alice)) < 0.02 * model_bytes
    assert alice.original_fingerprint != bob.original_fingerprint != owner.original_fingerprint


def owner_key_perm(owner: Key) -> bytes:
    from advparams.keys.blocked import split_secret

    return split_secret(owner.secret)[0]


def test_a_user_key_only_unlocks_and_needs_a_blocked_dithered_lock(pair) -> None:
    base, locked, owner = pair
    alice = issue_row_user_key(locked, owner, "alice", RowMarkConfig(positions=16))
    with pytest.raises(KeyMismatchError, match="does not lock"):
        lock_folder(base / "src", alice, base / "X", base / "x.key", key_bytes=key_to_bytes)
    from advparams.checkpoint import load_checkpoint

    with pytest.raises(KeyMismatchError):
        relock(load_checkpoint(base / "src").model, alice)
    plain = Key((), owner.original_fingerprint, owner.locked_fingerprint, "hardened",
                shuffles=tuple(Shuffle(s.name, s.numel, s.count, 0, s.layout) for s in owner.shuffles),
                secret=owner.secret)  # fmt: skip
    with pytest.raises(KeyMismatchError, match="blocked layout whose dither"):
        issue_row_user_key(locked, plain, "alice")
    assert load_key(base / "owner.key").secret == owner.secret
