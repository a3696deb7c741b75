"""The secret key of a locked model, and the exact lock/unlock operations.

A key is the bitwise difference between the original and the locked ``state_dict``: for
every changed tensor, the flat positions that differ, their original values and their
locked values, each stored in the tensor's own dtype. Unlocking writes the original
values back, so restoration is bit-exact for every dtype; the paper's perturbations
``δ = locked − original`` are derived on demand (:meth:`Key.perturbations`).

A key may also hold *shuffles* (:mod:`advparams.keys.shuffle`): tensors whose values
were moved among their own positions in an order drawn from the key's 32-byte secret.
They describe any number of changed values in a few bytes; :meth:`Key.changes` spells
them out as entries for a given locked model. A tensor is either in ``entries`` or in
``shuffles``, never both.

The key carries fingerprints of the locked and the original weights: :func:`unlock`
refuses a model that is not the one the key was made for, and checks that the unlocked
result is the original.
"""

from __future__ import annotations

import copy
import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from advparams.errors import KeyFileError, KeyMismatchError
from advparams.fingerprint import fingerprint_like, short, state_fingerprint, tied_names
from advparams.keys.blocked import BLOCK, ROW_KEY, blocked_lock, blocked_unlock, is_blocked, unlock_with
from advparams.keys.shuffle import (
    SECRET_BYTES,
    apply_shuffle_,
    dither_masks,
    shuffle_positions,
    undo_shuffle_,
    xor_dither_,
)

_INT_VIEW = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


@dataclass(frozen=True, eq=False)
class KeyEntry:
    """The changed positions of one ``state_dict`` tensor.

    Attributes:
        name: the tensor's ``state_dict`` name.
        indices: flat (row-major) positions, int64, sorted and unique.
        original: the original values there, in the tensor's dtype.
        locked: the locked values there, in the tensor's dtype.
    """

    name: str
    indices: torch.Tensor
    original: torch.Tensor
    locked: torch.Tensor

    def __post_init__(self) -> None:
        n = self.indices.numel()
        if self.indices.dtype != torch.int64 or self.indices.dim() != 1:
            raise KeyFileError(f"key entry {self.name!r}: indices must be a 1-d int64 tensor")
        if self.original.shape != (n,) or self.locked.shape != (n,):
            raise KeyFileError(
                f"key entry {self.name!r}: {n} indices but values of shape "
                f"{tuple(self.original.shape)} / {tuple(self.locked.shape)}"
            )
        if self.original.dtype != self.locked.dtype:
            raise KeyFileError(f"key entry {self.name!r}: original and locked values differ in dtype")
        if n and bool((self.indices[1:] <= self.indices[:-1]).any()):
            raise KeyFileError(f"key entry {self.name!r}: indices are not sorted and unique")


@dataclass(frozen=True)
class Shuffle:
    """A keyed shuffle of one ``state_dict`` tensor (see :mod:`advparams.keys.shuffle`).

    Attributes:
        name: the tensor's ``state_dict`` name.
        numel: its number of values (the draw depends on it).
        count: how many of its values move.
        dither: low mantissa bits of every moved value XORed with a keyed stream (0: none).
        layout: 1, the uniform shuffle of :mod:`advparams.keys.shuffle`; 2, the blocked
            shuffle of :mod:`advparams.keys.blocked` (every value moves, at the speed of
            memory; tensors of at least two blocks).
    """

    name: str
    numel: int
    count: int
    dither: int = 0
    layout: int = 1

    def __post_init__(self) -> None:
        if self.numel < 0 or not 2 <= self.count <= self.numel:
            raise KeyFileError(f"shuffle of {self.name!r}: cannot move {self.count} of {self.numel} values")
        if not 0 <= self.dither <= 52:
            raise KeyFileError(f"shuffle of {self.name!r}: cannot dither {self.dither} bits")
        if self.layout not in (1, 2):
            raise KeyFileError(f"shuffle of {self.name!r}: unknown layout {self.layout}")
        if self.layout == 2 and (self.count != self.numel or not is_blocked(self.numel)):
            raise KeyFileError(f"shuffle of {self.name!r}: a blocked shuffle moves all of at least {2 * BLOCK} values")

    def positions(self, secret: bytes) -> torch.Tensor:
        """The moved flat positions (in cycle order for the uniform layout; all, in order,
        for the blocked one)."""
        if self.layout == 2:
            return torch.arange(self.numel, dtype=torch.int64)
        return shuffle_positions(secret, self.name, self.numel, self.count)

    def lock_(self, flat: torch.Tensor, secret: bytes) -> None:
        """Locks ``flat`` (the tensor's values, 1-d) in place: the move, then the dither."""
        if self.layout == 2:
            flat.copy_(blocked_lock(flat, secret, self.name, self.dither))
            return
        p = self.positions(secret)
        apply_shuffle_(flat, p)
        if self.dither:
            xor_dither_(flat, p, dither_masks(secret, self.name, self.count, flat.dtype, self.dither))

    def locked(self, flat: torch.Tensor, secret: bytes) -> torch.Tensor:
        """The locked values of ``flat``, which may be changed (a working copy): a new
        tensor for the blocked layout, ``flat`` itself locked in place for the uniform one."""
        if self.layout == 2:
            return blocked_lock(flat, secret, self.name, self.dither)
        self.lock_(flat, secret)
        return flat

    def unlocked(self, flat: torch.Tensor, secret: bytes) -> torch.Tensor:
        """The original values of ``flat``, which may be changed (see :meth:`locked`)."""
        if self.layout == 2:
            return blocked_unlock(flat, secret, self.name, self.dither, scratch=True)
        self.unlock_(flat, secret)
        return flat

    def unlock_(self, flat: torch.Tensor, secret: bytes) -> None:
        """The exact inverse of :meth:`lock_`."""
        if self.layout == 2:
            flat.copy_(blocked_unlock(flat, secret, self.name, self.dither))
            return
        p = self.positions(secret)
        if self.dither:
            xor_dither_(flat, p, dither_masks(secret, self.name, self.count, flat.dtype, self.dither))
        undo_shuffle_(flat, p)


@dataclass(frozen=True, eq=False)
class Key:
    """A secret key: what was changed, and fingerprints of both ends.

    Attributes:
        entries: one :class:`KeyEntry` per changed tensor, in ``state_dict`` order.
        original_fingerprint: fingerprint of the original (unlocked) weights.
        locked_fingerprint: fingerprint of the locked weights.
        scheme: name of the scheme that made the key.
        config: the scheme's resolved configuration (JSON-ready).
        info: free-form JSON-ready facts (parameter counts, accuracies, ...).
        created: ISO-8601 UTC creation time.
        shuffles: keyed shuffles, applied before ``entries`` when locking.
        secret: the 32-byte secret the shuffles are drawn from (empty without shuffles, and
            in a user key that carries row keys).
        perm_secret, mask_key: a scalable user key's parts of the secret of its blocked
            shuffles (:func:`advparams.keys.blocked.split_secret`), empty otherwise.
        row_keys: a scalable user key's mask key of every run of each blocked shuffle
            (``[runs, 12]`` uint8; the owner's, or a mark's stand-in): it unlocks, never locks.
    """

    entries: tuple[KeyEntry, ...]
    original_fingerprint: str
    locked_fingerprint: str
    scheme: str
    config: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""
    shuffles: tuple[Shuffle, ...] = ()
    secret: bytes = field(default=b"", repr=False)
    perm_secret: bytes = field(default=b"", repr=False)
    mask_key: bytes = field(default=b"", repr=False)
    row_keys: Mapping[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.row_keys:
            self._check_row_keys()
        elif self.shuffles and len(self.secret) != SECRET_BYTES:
            raise KeyFileError(f"a key with shuffles needs a {SECRET_BYTES}-byte secret, got {len(self.secret)} bytes")
        names = [s.name for s in self.shuffles]
        if len(set(names)) != len(names):
            raise KeyFileError("a key shuffles a tensor twice")
        both = set(names) & {e.name for e in self.entries}
        if both:
            raise KeyFileError(f"tensor {sorted(both)[0]!r} is both shuffled and listed by entry")

    def _check_row_keys(self) -> None:
        if self.secret or len(self.perm_secret) != SECRET_BYTES or len(self.mask_key) != SECRET_BYTES:
            raise KeyFileError("a key with row keys holds the permutation secret and the mask key, not the secret")
        if {s.name for s in self.shuffles} != set(self.row_keys) or any(s.layout != 2 for s in self.shuffles):
            raise KeyFileError("a key with row keys has them for every shuffle, all blocked")
        for s in self.shuffles:
            keys = self.row_keys[s.name]
            if keys.dtype != torch.uint8 or tuple(keys.shape) != (-(-s.numel // BLOCK), ROW_KEY):
                raise KeyFileError(f"row keys of {s.name!r}: {tuple(keys.shape)} {keys.dtype}, not one per run")

    def unlocked_values(self, s: Shuffle, flat: torch.Tensor) -> torch.Tensor:
        """The values of shuffled tensor ``s`` before the lock (as this key restores them),
        from its locked values ``flat``, which may be changed (a working copy)."""
        if self.row_keys:
            keys = self.row_keys[s.name].numpy()
            return unlock_with(flat, self.perm_secret, self.mask_key, keys, s.name, s.dither, scratch=True)
        return s.unlocked(flat, self.secret)

    @property
    def insecure(self) -> str:
        """Why this key gives no protection (e.g. a secret derived from a seed), or ``""``."""
        reason = self.info.get("insecure", "")
        return reason if isinstance(reason, str) else "marked insecure"

    @property
    def num_changed(self) -> int:
        """Number of scalar values the lock changed (moved, for shuffles)."""
        return sum(e.indices.numel() for e in self.entries) + sum(s.count for s in self.shuffles)

    def counts(self) -> dict[str, int]:
        """Changed values per tensor, shuffled tensors first."""
        out = {s.name: s.count for s in self.shuffles}
        out.update({e.name: int(e.indices.numel()) for e in self.entries})
        return out

    def positions(self) -> dict[str, torch.Tensor]:
        """The changed flat positions per tensor (sorted int64); needs no model."""
        out = {s.name: s.positions(self.secret).sort().values for s in self.shuffles}
        out.update({e.name: e.indices for e in self.entries})
        return out

    def changes(self, locked: nn.Module) -> tuple[KeyEntry, ...]:
        """Every change as an explicit entry (positions, original and locked values), the
        shuffles spelled out against ``locked``, the model this key locked.

        Raises:
            KeyMismatchError: ``locked`` lacks a shuffled tensor or has another size.
        """
        if not self.shuffles:
            return self.entries
        state = locked.state_dict()
        spelled = []
        for s in self.shuffles:
            t = _shuffled_tensor(state, s)
            flat = t.detach().reshape(-1).cpu()
            restored = self.unlocked_values(s, flat.clone())
            idx = s.positions(self.secret).sort().values
            spelled.append(KeyEntry(s.name, idx, restored[idx].clone(), flat[idx].clone()))
        return tuple(spelled) + self.entries

    def perturbations(self) -> dict[str, torch.Tensor]:
        """The added perturbations ``δ = locked − original`` per tensor, in float64."""
        return {e.name: e.locked.double() - e.original.double() for e in self.entries}

    @classmethod
    def from_models(
        cls,
        original: nn.Module,
        locked: nn.Module,
        *,
        scheme: str,
        config: Mapping[str, Any] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> Key:
        """Builds the key that turns ``locked`` back into ``original`` (bitwise diff).

        A tensor tied to one before it in both models (the same storage under two
        names, as a language model's output layer and token embedding) is written
        through the first name only, so the key holds each change once."""
        a, b = original.state_dict(), locked.state_dict()
        if list(a) != list(b):
            raise KeyMismatchError("original and locked models have different state_dict entries")
        entries = []
        tied_a, tied_b = tied_names(a), tied_names(b)
        for name, ta in a.items():
            tb = b[name]
            if name in tied_a and tied_a[name] == tied_b.get(name):
                continue
            if ta.shape != tb.shape or ta.dtype != tb.dtype:
                raise KeyMismatchError(f"original and locked tensor {name!r} differ in shape or dtype")
            fa, fb = ta.detach().cpu().reshape(-1), tb.detach().cpu().reshape(-1)
            view = _INT_VIEW.get(fa.dtype)
            diff = fa.view(view) != fb.view(view) if view is not None else fa != fb
            idx = torch.nonzero(diff).reshape(-1)
            if idx.numel():
                entries.append(KeyEntry(name, idx.to(torch.int64), fa[idx].clone(), fb[idx].clone()))
        return cls(
            entries=tuple(entries),
            original_fingerprint=state_fingerprint(a),
            locked_fingerprint=state_fingerprint(b),
            scheme=scheme,
            config=dict(config or {}),
            info=dict(info or {}),
            created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        )


def _shuffled_tensor(state: Mapping[str, torch.Tensor], s: Shuffle) -> torch.Tensor:
    if s.name not in state:
        raise KeyMismatchError(f"the key shuffles tensor {s.name!r}, which this model does not have")
    t = state[s.name]
    if t.numel() != s.numel:
        raise KeyMismatchError(f"the key shuffles {s.numel} values of {s.name!r}, which has {t.numel()}")
    return t


def _shuffle(state: Mapping[str, torch.Tensor], key: Key, *, undo: bool) -> None:
    if key.row_keys and not undo:
        raise KeyMismatchError("a user key restores the user's copy; it does not lock a model")
    for s in key.shuffles:
        t = _shuffled_tensor(state, s)
        with torch.no_grad():
            flat = t.detach().reshape(-1).clone()
            if undo:
                flat = key.unlocked_values(s, flat)
            else:
                s.lock_(flat, key.secret)
            t.copy_(flat.view_as(t))


def _write(model: nn.Module, key: Key, *, to_original: bool, in_place: bool = False) -> nn.Module:
    out = model if in_place else copy.deepcopy(model)
    state = out.state_dict()
    if not to_original:
        _shuffle(state, key, undo=False)
    for e in key.entries:
        if e.name not in state:
            raise KeyMismatchError(f"the key changes tensor {e.name!r}, which this model does not have")
        t = state[e.name]
        if t.dtype != e.original.dtype:
            raise KeyMismatchError(f"tensor {e.name!r} is {t.dtype} but the key holds {e.original.dtype}")
        if e.indices.numel() and int(e.indices[-1]) >= t.numel():
            raise KeyMismatchError(
                f"the key addresses position {int(e.indices[-1])} of {e.name!r}, which has only {t.numel()} values"
            )
        with torch.no_grad():
            flat = t.detach().reshape(-1).clone()
            values = e.original if to_original else e.locked
            flat[e.indices.to(flat.device)] = values.to(flat.device)
            t.copy_(flat.view_as(t))
    if to_original:
        _shuffle(state, key, undo=True)
    return out


def unlock(model: nn.Module, key: Key) -> nn.Module:
    """Restores the original model from a locked one; ``model`` is not changed.

    Raises:
        KeyMismatchError: ``model`` is not the locked model this key was made for.
        KeyFileError: the result is not the original (the key is corrupt).
    """
    return _unlock(model, key, in_place=False)


def unlock_(model: nn.Module, key: Key) -> nn.Module:
    """Restores the original weights into the locked ``model`` itself and returns it: no
    second copy of the model in memory (serving code, large models). The fingerprints are
    checked first, so a wrong key leaves ``model`` as it was.

    Raises:
        KeyMismatchError: ``model`` is not the locked model this key was made for.
        KeyFileError: the result is not the original (the key is corrupt; ``model`` is
            then neither locked nor original: load it again).
    """
    return _unlock(model, key, in_place=True)


def _unlock(model: nn.Module, key: Key, *, in_place: bool) -> nn.Module:
    fp = fingerprint_like(model, key.locked_fingerprint)
    if fp == key.original_fingerprint and fp != key.locked_fingerprint:
        raise KeyMismatchError("this model is not locked: it already matches the key's original weights")
    if fp != key.locked_fingerprint:
        raise KeyMismatchError(
            f"this key does not belong to this model: the key unlocks {short(key.locked_fingerprint)}, "
            f"the model is {short(fp)}"
        )
    out = _write(model, key, to_original=True, in_place=in_place)
    if fingerprint_like(out, key.original_fingerprint) != key.original_fingerprint:
        raise KeyFileError("unlocking did not reproduce the original weights: the key is corrupt")
    return out


def relock(model: nn.Module, key: Key) -> nn.Module:
    """Applies a key to the original model again, giving the locked model (bit-exact).

    Raises:
        KeyMismatchError: ``model`` is not the original this key was made from.
    """
    fp = fingerprint_like(model, key.original_fingerprint)
    if fp != key.original_fingerprint:
        raise KeyMismatchError(f"this key was made from {short(key.original_fingerprint)}, the model is {short(fp)}")
    out = _write(model, key, to_original=False)
    if fingerprint_like(out, key.locked_fingerprint) != key.locked_fingerprint:
        raise KeyFileError("re-locking did not reproduce the locked weights: the key is corrupt")
    return out
