"""Per-user keys: the owner locks once and issues one key per user; each key unlocks a
copy that carries that user's mark (:mod:`advparams.tracing.mark`).

A user key is a plain key (no secret): for every value the owner's lock moved, the value
the user's copy holds, which is the original one, or the original plus or minus the
user's mark where the plan puts a mark. It takes a lock that moves many values, the
hardened lock's keyed shuffle (``docs/hardened.md``): the marks hide among values the user
cannot put back without the key, so a user who compares the locked model with his copy
learns neither where his marks are nor the original values under them. A sparse lock
(AdvParams) would leave every marked position, and its original value, in the user's
key in plain sight: :func:`issue_user_key` refuses such keys.

The code's secret is derived from the owner key's shuffle secret (SHA-256 with its own
label), so the owner key and a user's id determine the user's copy bit for bit; the
user's key carries the id and the mark's settings (no secret); its
``locked_fingerprint`` is the shared locked model's and its ``original_fingerprint`` names
the user's copy.
"""

from __future__ import annotations

import hashlib

from torch import nn

from advparams.errors import KeyMismatchError
from advparams.keys.key import Key, unlock
from advparams.keys.shuffle import MANTISSA_BITS
from advparams.registry import config_to_dict
from advparams.tracing.mark import MarkConfig, MarkPlan, mark_copy, mark_plan

__all__ = ["code_secret", "issue_user_key", "user_copy", "user_plan"]

_LABEL = b"advparams-trace-code-v1\0"


def code_secret(owner_key: Key) -> bytes:
    """The secret of the users' code, derived from the owner key's shuffle secret."""
    if not owner_key.shuffles or not owner_key.secret:
        raise KeyMismatchError(
            f"per-user keys need a lock that moves many values (scheme 'hardened'); this key "
            f"({owner_key.scheme}) changes {owner_key.num_changed} values, which a user's key would show in plain sight"
        )
    return hashlib.sha256(_LABEL + owner_key.secret).digest()


def user_plan(owner_key: Key, original: nn.Module, config: MarkConfig | None = None) -> MarkPlan:
    """Where the users' marks go in ``original`` (the model ``owner_key`` restores).

    Raises:
        KeyMismatchError: the owner key's lock is not a hardened one, or it leaves a weight
            tensor's values undithered (see the module docstring).
    """
    secret = code_secret(owner_key)
    state = original.state_dict()
    for s in owner_key.shuffles:
        t = state.get(s.name)
        if t is not None and t.dim() >= 2 and t.dtype in MANTISSA_BITS and s.dither < MANTISSA_BITS[t.dtype]:
            raise KeyMismatchError(
                f"per-user keys need a lock that dithers every moved value's mantissa ({s.name!r} is {t.dtype}: "
                f"lock with --scheme hardened --set dither={MANTISSA_BITS[t.dtype]}); without it a user who "
                "compares his copy with the locked model finds every mark"
            )
    within = {s.name: s.positions(owner_key.secret) for s in owner_key.shuffles}
    exclude = {e.name: e.indices for e in owner_key.entries}  # values set by entry, not hidden
    return mark_plan(original, secret, config, exclude=exclude, within=within)


def user_copy(locked: nn.Module, owner_key: Key, user: str, config: MarkConfig | None = None) -> nn.Module:
    """User ``user``'s copy: the original (``locked`` unlocked with ``owner_key``) with
    the user's marks."""
    original = unlock(locked, owner_key)
    return mark_copy(original, user_plan(owner_key, original, config), user)


def issue_user_key(locked: nn.Module, owner_key: Key, user: str, config: MarkConfig | None = None) -> Key:
    """The key that turns ``locked`` into user ``user``'s copy (``locked`` is not changed).

    Raises:
        KeyMismatchError: ``owner_key`` does not fit ``locked``, or is not a lock that can
            hide marks (see the module docstring).
    """
    cfg = config or MarkConfig()
    copy_ = user_copy(locked, owner_key, user, cfg)
    return Key.from_models(
        copy_,
        locked,
        scheme=owner_key.scheme,
        config=owner_key.config,
        info={
            "user": user,
            "mark": config_to_dict(cfg),
            "marked_values": cfg.positions,
        },
    )
