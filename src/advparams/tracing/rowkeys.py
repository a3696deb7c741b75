"""Per-user keys that scale (``docs/scale.md``): a user key of a few bytes per run of 4,096
values, not one entry per value.

The owner locks once with the hardened lock in the blocked layout, its dither covering a
*mark band* of low mantissa bits (``--set layout=blocked --set dither=BITS``); every run of
4,096 values of the locked model has a mask key of its own (:mod:`advparams.keys.blocked`).
A user key holds the permutation secret and the mask key (the secret's parts that move the
values back), the owner's mask key of every run, and, for the runs the Tardos code marks
(:class:`RowMarkConfig.positions` of them, drawn from the code's secret), one of two
stand-in keys by the user's code bit instead: the user's copy is the original except that
the mark band of those runs is noise only the owner can reproduce. Tensors too small to
block are given as plain values. Every mask key looks like every other, so the holder cannot
tell the marked runs, nor restore their band.

Not yet here (``docs/scale.md``, "Not met"): tracing a suspect from these marks, and what a
holder of one, two or three keys can do against them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch

from advparams.errors import ConfigError, KeyMismatchError
from advparams.keys.blocked import BLOCK, row_keys, split_secret, variant_row_keys
from advparams.keys.key import Key, KeyEntry, Shuffle
from advparams.registry import config_to_dict, validated
from advparams.tracing.code import TardosCode
from advparams.tracing.keys import code_secret

__all__ = ["RowMarkConfig", "RowPlan", "issue_row_user_key", "row_plan"]

_DOMAIN = b"advparams-rowmark-v1\0"


@dataclass(frozen=True)
@validated
class RowMarkConfig:
    """Settings of the marks a scalable user key carries.

    Attributes:
        positions: marked runs of 4,096 values, the length of the Tardos code [inferred].
        colluders: the coalition size the code is built for (Tardos' ``c``).
        false_accusation: the chance of accusing any innocent user that tracing allows.
    """

    positions: int = 4096
    colluders: int = 3
    false_accusation: float = 1e-3

    def __post_init__(self) -> None:
        if self.positions < 1:
            raise ConfigError(f"positions must be at least 1, got {self.positions}")
        if self.colluders < 1:
            raise ConfigError(f"colluders must be at least 1, got {self.colluders}")
        if not 0.0 < self.false_accusation < 1.0:
            raise ConfigError(f"false_accusation must be in (0, 1), got {self.false_accusation}")


@dataclass(frozen=True, eq=False)
class RowPlan:
    """Which runs carry the marks: code position ``j`` is locked run ``rows[j]`` of tensor
    ``names[j]``."""

    names: tuple[str, ...]
    rows: torch.Tensor
    code: TardosCode

    def groups(self) -> dict[str, torch.Tensor]:
        """Code positions by tensor name."""
        out: dict[str, list[int]] = {}
        for j, name in enumerate(self.names):
            out.setdefault(name, []).append(j)
        return {name: torch.tensor(js, dtype=torch.int64) for name, js in out.items()}


def _markable(owner_key: Key) -> list[Shuffle]:
    out = [s for s in owner_key.shuffles if s.layout == 2 and s.dither > 0]
    if not out or owner_key.row_keys:
        raise KeyMismatchError(
            "scalable user keys need the owner key of a hardened lock in the blocked layout whose dither covers "
            "the mark band (lock with --scheme hardened --set layout=blocked --set dither=BITS)"
        )
    return out


def row_plan(owner_key: Key, config: RowMarkConfig | None = None) -> RowPlan:
    """The marked runs of ``owner_key``'s lock: ``positions`` distinct full runs of its
    blocked, dithered tensors, drawn from ``SHAKE-256(b"advparams-rowmark-v1\\0" + code
    secret)`` read as little-endian unsigned 64-bit words modulo the number of such runs
    (tensors in key order), repeats skipped."""
    cfg = config or RowMarkConfig()
    secret = code_secret(owner_key)
    tensors = _markable(owner_key)
    sizes = [s.numel // BLOCK for s in tensors]
    total = sum(sizes)
    if total < cfg.positions:
        raise ConfigError(f"the mark asks for {cfg.positions} runs but this lock has {total}: lower positions")
    starts = np.cumsum([0, *sizes])
    chosen: list[int] = []
    seen: set[int] = set()
    block = 0
    while len(chosen) < cfg.positions:
        want = 2 * (cfg.positions - len(chosen)) + 64
        stream = hashlib.shake_256(_DOMAIN + secret + block.to_bytes(8, "little")).digest(8 * want)
        block += 1
        for flat in (np.frombuffer(stream, dtype="<u8") % np.uint64(total)).tolist():
            if flat not in seen:
                seen.add(flat)
                chosen.append(flat)
                if len(chosen) == cfg.positions:
                    break
    where = [int(np.searchsorted(starts, c, side="right")) - 1 for c in chosen]
    return RowPlan(
        names=tuple(tensors[t].name for t in where),
        rows=torch.tensor([c - int(starts[t]) for c, t in zip(chosen, where, strict=True)], dtype=torch.int64),
        code=TardosCode(secret, cfg.positions, cfg.colluders),
    )


def issue_row_user_key(
    locked: str | os.PathLike[str], owner_key: Key, user: str, config: RowMarkConfig | None = None
) -> Key:
    """User ``user``'s scalable key for the locked Hugging Face folder ``locked`` (the
    owner's lock with ``owner_key``), read tensor by tensor: its locked fingerprint is the
    folder's, its original fingerprint the user's copy's.

    Raises:
        KeyMismatchError: ``owner_key`` is not a blocked, dithered hardened key, or does
            not belong to ``locked``.
    """
    from advparams.streaming import key_changes, stream_folder

    cfg = config or RowMarkConfig()
    plan = row_plan(owner_key, cfg)
    bits = plan.code.codeword(user)
    blocked = _markable(owner_key)
    perm, mask = split_secret(owner_key.secret)
    keys = {}
    groups = plan.groups()
    for s in blocked:
        mine = torch.from_numpy(row_keys(owner_key.secret, s.name, -(-s.numel // BLOCK)).copy())
        js = groups.get(s.name)
        if js is not None:
            for bit in (0, 1):
                pick = js[bits[js] == bool(bit)]
                rows = plan.rows[pick]
                if rows.numel():
                    mine[rows] = torch.from_numpy(variant_row_keys(owner_key.secret, s.name, rows, bit))
        keys[s.name] = mine
    small = _small_entries(locked, owner_key, {s.name for s in blocked})
    user_key = Key(
        entries=owner_key.entries + small,
        original_fingerprint="",
        locked_fingerprint=owner_key.locked_fingerprint,
        scheme=owner_key.scheme,
        config=owner_key.config,
        info={"user": user, "mark": config_to_dict(cfg), "marked_runs": cfg.positions, "scalable": True},
        created=owner_key.created,
        shuffles=tuple(blocked),
        perm_secret=perm,
        mask_key=mask,
        row_keys=keys,
    )
    done = stream_folder(locked, None, key_changes(user_key, undo=True))
    if done.input_fingerprint != owner_key.locked_fingerprint:
        raise KeyMismatchError("the owner key does not belong to this locked folder")
    return dataclasses.replace(user_key, original_fingerprint=done.output_fingerprint)


def _small_entries(locked: str | os.PathLike[str], owner_key: Key, blocked: set[str]) -> tuple[KeyEntry, ...]:
    """The owner's shuffles of tensors too small to block, as plain entries (every moved
    position, the original and locked values), read from the locked folder."""
    from advparams.huggingface.folder import weight_files
    from advparams.streaming import read_shard

    small = {s.name: s for s in owner_key.shuffles if s.name not in blocked}
    out = []
    for shard_name in weight_files(locked):
        shard = read_shard(os.path.join(locked, shard_name))
        for name in shard.tensors:
            if name in small:
                flat = shard.read(name)
                restored = owner_key.unlocked_values(small[name], flat.clone())
                idx = small[name].positions(owner_key.secret).sort().values
                out.append(KeyEntry(name, idx, restored[idx].clone(), flat[idx].clone()))
    if len(out) != len(small):
        raise KeyMismatchError("the owner key shuffles a tensor that this locked folder does not hold")
    return tuple(out)
