"""Per-user fingerprints: a table of users, each with a unique random bit string.

A fingerprint is ``bits`` random bits (default 256, a 16x16 binary image) drawn from the
operating system's generator when the user is registered. Authentication reads a bit
string (e.g. the LSB plane of a watermark key image) and names the registered user whose
fingerprint it matches within ``max_errors`` bit errors, or nobody: an unknown or forged
fingerprint is rejected. With 256 random bits, two fingerprints agree on a given bit with
probability 1/2, so a forged string lies within 16 errors of a registered one with
probability below ``users * 2**-160`` (binomial tail), and so do two users' fingerprints.

The table is a JSON file (``"format": "advparams-users"``, version 1) with a SHA-256
digest over its content; it names users and holds their fingerprints in hex, nothing
else. Writes are atomic and never replace a file without ``force``.

Example:
    >>> table = UserTable()
    >>> fp = table.register("alice")
    >>> table.authenticate(fp).user
    'alice'
    >>> table.authenticate(~fp).user is None
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from advparams.errors import UserTableError
from advparams.files import LIMITS, atomic_write_bytes, integer, parse_json, read_file

USERS_FORMAT = "advparams-users"
USERS_VERSION = 1
MAX_BITS = 4096
MAX_USERS = 2_000  # the distance check on load is quadratic: 0.8 s at 2,000 users of 4,096 bits (2-core CPU)
_HEX = re.compile(r"[0-9a-f]*")


@dataclass(frozen=True)
class Authentication:
    """Who a bit string belongs to.

    Attributes:
        user: the matching user, or None (unknown or forged).
        errors: bit errors against the nearest registered fingerprint (-1 for an empty table).
        nearest: the nearest registered user, matched or not.
    """

    user: str | None
    errors: int
    nearest: str | None


def _to_bits(data: bytes, bits: int) -> torch.Tensor:
    raw = torch.tensor(list(data), dtype=torch.uint8)
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8)
    return ((raw.unsqueeze(1) >> shifts) & 1).reshape(-1)[:bits].to(torch.bool)


def _to_hex(bits: torch.Tensor) -> str:
    padded = torch.zeros(-(-bits.numel() // 8) * 8, dtype=torch.uint8)
    padded[: bits.numel()] = bits.to(torch.uint8)
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.int64)
    values = (padded.view(-1, 8).long() * weights).sum(1)
    return bytes(values.tolist()).hex()


class UserTable:
    """Registered users and their fingerprints.

    Args:
        bits: fingerprint length in bits (at least 64).
        max_errors: bit errors still accepted as a match by :meth:`authenticate`.
    """

    def __init__(self, bits: int = 256, max_errors: int = 16) -> None:
        if not 64 <= bits <= MAX_BITS:
            raise UserTableError(f"fingerprints need 64 to {MAX_BITS} bits, got {bits}")
        if not 0 <= max_errors < bits // 4:
            raise UserTableError(f"max_errors must be in [0, {bits // 4}), got {max_errors}")
        self.bits = bits
        self.max_errors = max_errors
        self._users: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, user: object) -> bool:
        return user in self._users

    @property
    def users(self) -> list[str]:
        """Registered user names, in registration order."""
        return list(self._users)

    def fingerprint(self, user: str) -> torch.Tensor:
        """The fingerprint of ``user`` (bool ``[bits]``)."""
        if user not in self._users:
            raise UserTableError(f"unknown user {user!r}")
        return self._users[user].clone()

    def register(self, user: str) -> torch.Tensor:
        """Adds ``user`` with a fresh random fingerprint, unique in the table, and returns it."""
        if not user or user != user.strip():
            raise UserTableError("a user name must be non-empty, without leading or trailing spaces")
        if user in self._users:
            raise UserTableError(f"user {user!r} is already registered")
        if len(self._users) >= MAX_USERS:
            raise UserTableError(f"a user table holds at most {MAX_USERS} users")
        for _ in range(100):
            fp = _to_bits(os.urandom(-(-self.bits // 8)), self.bits)
            if all(int((fp ^ other).sum()) > 2 * self.max_errors for other in self._users.values()):
                self._users[user] = fp
                return fp.clone()
        raise UserTableError("could not draw a fingerprint far enough from the others")  # pragma: no cover

    def authenticate(self, bits: torch.Tensor) -> Authentication:
        """The registered user whose fingerprint ``bits`` matches within ``max_errors``, if any."""
        bits = bits.to(torch.bool).reshape(-1)
        if bits.numel() != self.bits:
            raise UserTableError(f"expected a {self.bits}-bit fingerprint, got {bits.numel()} bits")
        if not self._users:
            return Authentication(None, -1, None)
        errors = {u: int((bits ^ fp).sum()) for u, fp in self._users.items()}
        nearest = min(errors, key=lambda u: errors[u])
        matched = nearest if errors[nearest] <= self.max_errors else None
        return Authentication(matched, errors[nearest], nearest)

    # -- file ------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The table as a JSON file (see the module docstring)."""
        body = {
            "format": USERS_FORMAT,
            "version": USERS_VERSION,
            "bits": self.bits,
            "max_errors": self.max_errors,
            "users": {u: _to_hex(fp) for u, fp in self._users.items()},
        }
        body["digest"] = table_digest(body)
        return (json.dumps(body, indent=2) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> UserTable:
        """Parses a table written by :meth:`to_bytes`, checking format, version and digest."""
        body = parse_json(data, what="user table", error=UserTableError)
        if not isinstance(body, dict) or body.get("format") != USERS_FORMAT:
            raise UserTableError("not an advparams user table")
        if body.get("version") != USERS_VERSION or isinstance(body.get("version"), bool):
            raise UserTableError(f"user table version {str(body.get('version'))[:20]!r} is not supported")
        if body.get("digest") != table_digest(body):
            raise UserTableError("user table is corrupt or was edited (digest mismatch)")
        bits = integer(body.get("bits"), what="user table bits", lo=64, hi=MAX_BITS, error=UserTableError)
        max_errors = integer(
            body.get("max_errors"), what="user table max_errors", lo=0, hi=bits // 4 - 1, error=UserTableError
        )
        users = body.get("users")
        if not isinstance(users, dict) or len(users) > MAX_USERS:
            raise UserTableError(f"user table is corrupt ('users' must map at most {MAX_USERS} names to fingerprints)")
        table = cls(bits, max_errors)
        width = 2 * -(-bits // 8)
        for user, hexed in users.items():
            if not user or user != user.strip() or len(user) > 200:
                raise UserTableError(f"user table is corrupt (bad user name {user[:40]!r})")
            if not isinstance(hexed, str) or len(hexed) != width or not _HEX.fullmatch(hexed):
                raise UserTableError(
                    f"user table is corrupt (the fingerprint of {user[:40]!r} is not {width} hex digits)"
                )
            table._users[user] = _to_bits(bytes.fromhex(hexed), bits)
        close = _too_close(table._users, 2 * max_errors)
        if close:
            raise UserTableError(
                f"user table is corrupt: {close[0][:40]!r} and {close[1][:40]!r} have fingerprints "
                "too close to tell apart"
            )
        return table

    def save(self, path: str | Path, *, force: bool = False) -> None:
        """Writes the table atomically; an existing file is replaced only with ``force``."""
        atomic_write_bytes(Path(path), self.to_bytes(), force=force, private=True, accept=is_user_table)

    @classmethod
    def load(cls, path: str | Path) -> UserTable:
        """Reads a table file."""
        return cls.from_bytes(read_file(path, what="user table", limit=LIMITS["user-table"], error=UserTableError))


def table_digest(body: dict[str, object]) -> str:
    """The ``digest`` field of a user table with this content (SHA-256 of the other fields)."""
    content = {k: v for k, v in body.items() if k != "digest"}
    return "sha256:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def is_user_table(path: Path) -> bool:
    """Whether ``path`` holds a user table (what ``--force`` may replace)."""
    try:
        UserTable.load(path)
    except UserTableError:
        return False
    return True


def _too_close(users: dict[str, torch.Tensor], within: int) -> tuple[str, str] | None:
    """Two users whose fingerprints differ in at most ``within`` bits, if any (vectorised:
    one pass over the table per user)."""
    if len(users) < 2:
        return None
    names = list(users)
    packed = np.packbits(torch.stack([users[n] for n in names]).numpy(), axis=1)
    pad = -packed.shape[1] % 8
    words = np.ascontiguousarray(np.pad(packed, ((0, 0), (0, pad)))).view(np.uint64)
    for i in range(len(names) - 1):
        dist = np.bitwise_count(np.bitwise_xor(words[i + 1 :], words[i])).sum(axis=1)
        hit = np.flatnonzero(dist <= within)
        if hit.size:
            return names[i], names[i + 1 + int(hit[0])]
    return None
