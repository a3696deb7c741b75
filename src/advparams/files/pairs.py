"""A locked model and its key, written as a pair: no instant leaves a locked model at its
path beside a key that does not unlock it, and a pair interrupted by a kill is completed
or rolled back by the next writer (see ``docs/formats.md``, "Writing")."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from advparams.files.writing import (
    MARKER,
    _backup_path,
    _fsync_dir,
    _PendingFile,
    _remove,
    _staged,
    check_output,
    read_marker,
    resolve,
)


def _sha256_file(path: Path) -> str | None:
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _pair_hash(folder: Path) -> str | None:
    """The hash of the key file a staged locked folder was installed with (its marker)."""
    try:
        body = json.loads((folder / MARKER).read_bytes())
    except (OSError, ValueError):
        return None
    return body.get("key_sha256") if isinstance(body, dict) else None


def is_paired_key(folder: str | os.PathLike[str], key: str | os.PathLike[str]) -> bool:
    """Whether the file at ``key`` is the key that the locked-model folder ``folder`` was
    installed with (its marker records the key file's SHA-256): the only key that
    ``lock --force`` may replace, together with that folder."""
    recorded = _pair_hash(Path(folder))
    return recorded is not None and os.path.isdir(folder) and _sha256_file(Path(key)) == recorded


def recover_interrupted_pair(dest: str | os.PathLike[str], key_dest: str | os.PathLike[str]) -> str:
    """Finishes or rolls back an :func:`install_folder_with_key` that was killed, so that
    the paths hold the previous pair or the new one, complete; returns what it did ("" if
    nothing was left over).

    * The previous folder in its backup and nothing at ``dest``: killed inside the
      replacement. If the new folder is staged complete and the key at ``key_dest`` is
      the one it was installed with, the new pair is completed; otherwise the previous
      pair is put back (its key from the key's backup; a key that this run placed at a
      path that had none is removed with its unpublished folder).
    * Nothing at ``dest`` and no backup, but the new folder staged complete beside a key
      that matches it: killed between the key's and the folder's move; completed.
    * Otherwise only leftovers (backups of a replaced pair, staged folders) are removed.
    """
    dest, key_dest = resolve(dest), resolve(key_dest)
    dest_bak, key_bak = _backup_path(dest), _backup_path(key_dest)
    had_key_bak = os.path.lexists(key_bak)
    if had_key_bak and not os.path.lexists(key_dest):
        os.replace(key_bak, key_dest)  # killed between the old key's unlink and the new key's link
    key_hash = _sha256_file(key_dest) if os.path.lexists(key_dest) else None
    staged = [f for f in _staged(dest) if key_hash is not None and _pair_hash(f) == key_hash]
    done = ""
    if not os.path.lexists(dest) and staged:
        os.rename(staged[0], dest)  # roll forward: the key at key_dest is this folder's
        done = f"completed the interrupted lock: {dest} and {key_dest}"
    elif os.path.lexists(dest_bak) and not os.path.lexists(dest):
        if os.path.lexists(key_bak):
            os.replace(key_bak, key_dest)
        elif not had_key_bak and os.path.lexists(key_dest):
            key_dest.unlink()  # placed by the interrupted run at a path that held no key
        os.rename(dest_bak, dest)
        done = f"rolled back the interrupted lock: {dest} and {key_dest} hold the previous pair"
    if os.path.lexists(dest_bak):
        _remove(dest_bak)
    with contextlib.suppress(FileNotFoundError):
        key_bak.unlink()
    for leftover in _staged(dest):
        _remove(leftover)
    if done:
        _fsync_dir(dest.parent)
    return done


def install_folder_with_key(
    folder: Path, dest: Path, key_data: bytes, key_dest: Path, *, force: bool, key_accept: Callable[[Path], bool]
) -> None:
    """Moves complete folder ``folder`` (a locked model, staged by :func:`staging_folder`
    beside ``dest``) to ``dest`` and writes its key to ``key_dest``, so that at no instant
    is a locked model at ``dest`` beside a key at ``key_dest`` that does not unlock it, and
    no key is lost.

    Order: the folder's marker records the key file's SHA-256; the previous key is
    hard-linked to a hidden backup and the previous folder renamed to a hidden backup
    (``dest`` is then empty); the previous key's name is removed (its backup holds it) and
    the new key linked in from an unnamed file; the new folder is renamed to ``dest``; the
    backups are removed, the folder's first. Killed in between, the previous pair stays
    whole in the backups and :func:`recover_interrupted_pair`, which the next ``lock`` to
    these paths runs first, completes or rolls back. Any error that Python sees puts the
    previous pair back at once.

    Raises:
        OutputExistsError: as :func:`check_output`, for either path.
    """
    dest = check_output(dest, force=force, made_by=read_marker(folder))
    key_dest = check_output(key_dest, force=force, accept=key_accept)
    body = json.loads((folder / MARKER).read_text())
    body["key_sha256"] = "sha256:" + hashlib.sha256(key_data).hexdigest()
    (folder / MARKER).write_text(json.dumps(body) + "\n")
    pending = _PendingFile(key_dest.parent, key_dest.name, key_data, 0o600)
    dest_bak, key_bak = _backup_path(dest), _backup_path(key_dest)
    had_dest, had_key = os.path.lexists(dest), os.path.lexists(key_dest)
    placed_key = False
    try:
        if had_key:
            os.link(key_dest, key_bak)
        if had_dest:
            os.rename(dest, dest_bak)
        _fsync_dir(dest.parent)
        if had_key:
            os.unlink(key_dest)
        pending.link(key_dest)
        placed_key = True
        os.rename(folder, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        if not os.path.lexists(dest) or not placed_key:
            if placed_key:
                with contextlib.suppress(FileNotFoundError):
                    key_dest.unlink()
            if had_key and os.path.lexists(key_bak):
                os.replace(key_bak, key_dest)
            if had_dest and os.path.lexists(dest_bak) and not os.path.lexists(dest):
                os.rename(dest_bak, dest)
        raise
    finally:
        pending.discard()
    _remove(dest_bak)
    with contextlib.suppress(FileNotFoundError):
        key_bak.unlink()
    _fsync_dir(dest.parent)
