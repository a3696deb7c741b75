"""The owner's roster of users who hold traceable keys, and the mark's settings.

A roster is a JSON file (``"format": "advparams-trace-users"``, version 1) with a SHA-256
digest over its content: the mark's settings (:class:`~advparams.tracing.mark.MarkConfig`)
and the user ids, in the order they were added. It holds no secret: the code's secret
comes from the owner key. Tracing scores every user of the roster, so the roster must list
every user a key was issued to. Writes are atomic and replace a file only with ``force``.

Example:
    >>> roster = Roster().add("alice", "bob")
    >>> roster.users
    ('alice', 'bob')
    >>> Roster.from_bytes(roster.to_bytes()).users
    ('alice', 'bob')
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from advparams.errors import ConfigError, UserTableError
from advparams.files import LIMITS, atomic_write_bytes, parse_json, read_file
from advparams.registry import config_from_dict, config_to_dict
from advparams.tracing.mark import MarkConfig

__all__ = ["ROSTER_FORMAT", "Roster", "is_roster"]

ROSTER_FORMAT = "advparams-trace-users"
ROSTER_VERSION = 1
MAX_USERS = 100_000


def _digest(body: dict[str, object]) -> str:
    content = {k: v for k, v in body.items() if k != "digest"}
    return "sha256:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _check_user(user: str) -> str:
    if not isinstance(user, str) or not user or user != user.strip() or len(user) > 200 or "\0" in user:
        raise UserTableError(f"bad user id {str(user)[:40]!r}: 1-200 characters, no surrounding spaces")
    return user


@dataclass(frozen=True)
class Roster:
    """The users who hold traceable keys, and the mark they carry.

    Attributes:
        mark: the mark's settings, the same for every user.
        users: user ids, in the order they were added.
    """

    mark: MarkConfig = field(default_factory=MarkConfig)
    users: tuple[str, ...] = ()

    def __contains__(self, user: object) -> bool:
        return user in self.users

    def add(self, *users: str) -> Roster:
        """A roster with ``users`` added (an id already listed is an error)."""
        if len(self.users) + len(users) > MAX_USERS:
            raise UserTableError(f"a roster holds at most {MAX_USERS} users")
        seen = set(self.users)  # linear in the roster: a set, not a scan per user
        for u in users:
            _check_user(u)
            if u in seen:
                raise UserTableError(f"user {u[:40]!r} is already in the roster")
            seen.add(u)
        return replace(self, users=(*self.users, *users))

    def require(self, user: str) -> None:
        """Raises unless ``user`` is listed (a key is issued only to a listed user, so that
        tracing scores everyone who holds one)."""
        if user not in self.users:
            raise UserTableError(f"user {user[:40]!r} is not in the roster: add them first (advparams keys users add)")

    def to_bytes(self) -> bytes:
        """The roster as a JSON file (see the module docstring)."""
        body: dict[str, object] = {
            "format": ROSTER_FORMAT,
            "version": ROSTER_VERSION,
            "mark": config_to_dict(self.mark),
            "users": list(self.users),
        }
        body["digest"] = _digest(body)
        return (json.dumps(body, indent=2) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Roster:
        """Parses a roster written by :meth:`to_bytes`, checking format, version and digest."""
        body = parse_json(data, what="user roster", error=UserTableError)
        if not isinstance(body, dict) or body.get("format") != ROSTER_FORMAT:
            raise UserTableError("not an advparams user roster (advparams keys users create makes one)")
        if body.get("version") != ROSTER_VERSION or isinstance(body.get("version"), bool):
            raise UserTableError(f"user roster version {str(body.get('version'))[:20]!r} is not supported")
        if body.get("digest") != _digest(body):
            raise UserTableError("user roster is corrupt or was edited (digest mismatch)")
        mark, users = body.get("mark"), body.get("users")
        if not isinstance(mark, dict) or not isinstance(users, list) or len(users) > MAX_USERS:
            raise UserTableError("user roster is corrupt ('mark' must be an object, 'users' a list of ids)")
        try:
            config = config_from_dict(MarkConfig, mark, what="mark")
        except (ValueError, ConfigError) as e:
            raise UserTableError(f"user roster is corrupt (mark settings: {e})") from None
        return cls(config).add(*users)

    def save(self, path: str | Path, *, force: bool = False) -> None:
        """Writes the roster atomically; an existing file is replaced only with ``force``,
        and only if it is a roster."""
        atomic_write_bytes(Path(path), self.to_bytes(), force=force, accept=is_roster)

    @classmethod
    def load(cls, path: str | Path) -> Roster:
        """Reads a roster file (a regular file within the size limit)."""
        return cls.from_bytes(read_file(path, what="user roster", limit=LIMITS["user-table"], error=UserTableError))


def is_roster(path: Path) -> bool:
    """Whether ``path`` holds a roster (what ``--force`` may replace)."""
    try:
        Roster.load(path)
    except UserTableError:
        return False
    return True
